package federation

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Inbound EDUs: the ephemeral part of a transaction. Each EDU is checked
// (its users must be the origin's users, its rooms rooms they are joined
// to) and applied locally, so that local clients see it in /sync: typing
// and receipts in the room's ephemeral events, presence in the presence
// section, device list and cross-signing key updates in device_lists,
// to-device messages in to_device. An EDU that is unknown, malformed or
// not the origin's to send is dropped with a log line: the transaction is
// still answered 200, as the spec has it for EDUs.

// EDU types of the Server-Server API.
const (
	EDUTyping           = "m.typing"
	EDUReceipt          = "m.receipt"
	EDUPresence         = "m.presence"
	EDUDeviceListUpdate = "m.device_list_update"
	EDUSigningKeyUpdate = "m.signing_key_update"
	EDUDirectToDevice   = "m.direct_to_device"
)

// TypingSetter is what m.typing needs: the node's typing state
// (*actors.Typing), which wakes the room's syncs itself.
type TypingSetter interface {
	Set(roomID, userID string, typing bool, timeout time.Duration)
}

// RemotePresenceSetter is what m.presence needs: the node's presence state
// (*actors.Presence), which wakes the syncs watching the user itself.
type RemotePresenceSetter interface {
	SetRemote(userID, presence string, statusMsg *string, lastActive time.Time, currentlyActive bool)
}

// RoomMembershipReader says whether a user is joined to a room: typing and
// receipts are taken only from the room's members.
type RoomMembershipReader interface {
	RoomInfo(ctx context.Context, roomID string) (nid persistence.RoomNID, version string, err error)
	MembershipOf(ctx context.Context, room persistence.RoomNID, userID string) (*persistence.Membership, error)
}

// ReceiptWriter stores remote users' receipts.
type ReceiptWriter interface {
	PutReceipt(ctx context.Context, r persistence.Receipt) (persistence.StreamPos, error)
}

// UserRooms lists a user's memberships: a remote user's presence and
// device list updates are taken only while the user shares a room with
// this server's users (nobody here would see them otherwise, and a server
// cannot fill this one's memory with users nobody knows).
type UserRooms interface {
	MembershipsForUser(ctx context.Context, userID string) ([]persistence.Membership, error)
}

// DeviceListWriter records that a remote user's devices or cross-signing
// keys changed: the local users sharing a room with them see the user in
// device_lists.changed and query the keys again.
type DeviceListWriter interface {
	RecordDeviceListChange(ctx context.Context, userID string) (persistence.StreamPos, error)
}

// ToDeviceWriter delivers to-device messages to local devices.
type ToDeviceWriter interface {
	ListDevices(ctx context.Context, localpart string) ([]persistence.Device, error)
	SendToDevice(ctx context.Context, msgs []persistence.ToDeviceMessage) ([]persistence.StreamPos, error)
}

// SyncPublisher wakes the syncs of a room's members or of users when a
// stream advanced (the node's sync notifier).
type SyncPublisher interface {
	Publish(*messages.RoomAdvanced)
}

// EDUReceivers apply inbound EDUs; a nil field drops the EDUs that need it
// (Presence nil: presence is off).
type EDUReceivers struct {
	Typing      TypingSetter
	Presence    RemotePresenceSetter
	Members     RoomMembershipReader
	Users       UserRooms
	Receipts    ReceiptWriter
	DeviceLists DeviceListWriter
	ToDevice    ToDeviceWriter
	Publish     SyncPublisher

	// aclAllows applies a room's server ACL to an EDU's origin (set by
	// NewServer: typing and receipts are refused as the room's events
	// are).
	aclAllows func(ctx context.Context, roomID string, nid persistence.RoomNID, version string, origin spec.ServerName) (bool, error)
}

// remoteTypingTimeout is how long a remote user's typing lasts without a
// new m.typing (the EDU has no timeout; clients renew every few seconds).
const remoteTypingTimeout = 30 * time.Second

// Bounds on what one EDU may make this server do.
const (
	maxEDUToDeviceMessages = 10000
	maxPresencePush        = 1000
)

// errEDU is why an EDU was dropped.
type errEDU string

func (e errEDU) Error() string { return string(e) }

// handleEDUs applies a transaction's EDUs in order. Nothing in them fails
// the transaction.
func (s *Server) handleEDUs(ctx context.Context, origin spec.ServerName, raws []json.RawMessage) {
	for _, raw := range raws {
		var edu struct {
			Type    string          `json:"edu_type"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(raw, &edu); err != nil || len(edu.Content) == 0 || edu.Content[0] != '{' {
			zerolog.Ctx(ctx).Info().Str("origin", string(origin)).Msg("dropped a malformed EDU")
			continue
		}
		err := s.handleEDU(ctx, origin, edu.Type, edu.Content)
		if err != nil {
			ev := zerolog.Ctx(ctx).Info()
			var refused errEDU
			if !errors.As(err, &refused) {
				ev = zerolog.Ctx(ctx).Warn()
			}
			ev.Err(err).Str("origin", string(origin)).Str("edu_type", edu.Type).Msg("dropped an EDU")
		}
	}
}

func (s *Server) handleEDU(ctx context.Context, origin spec.ServerName, eduType string, content json.RawMessage) error {
	r := &s.edus
	switch eduType {
	case EDUTyping:
		return r.typing(ctx, origin, content)
	case EDUReceipt:
		return r.receipts(ctx, origin, content)
	case EDUPresence:
		return r.presence(ctx, origin, content)
	case EDUDeviceListUpdate, EDUSigningKeyUpdate:
		return r.deviceList(ctx, origin, content)
	case EDUDirectToDevice:
		return r.toDevice(ctx, origin, s.self.ServerName, content, s.toDeviceIDs)
	default:
		return errEDU("unknown EDU type")
	}
}

// userOf checks that userID is a user ID of origin.
func userOf(origin spec.ServerName, userID string) error {
	u, err := spec.NewUserID(userID, true)
	if err != nil {
		return errEDU("not a user ID: " + userID)
	}
	if u.Domain() != origin {
		return errEDU("the user " + userID + " is not the origin's")
	}
	return nil
}

// joined returns the room's NID when userID (of origin) is joined to it
// and the room's server ACL allows origin.
func (r *EDUReceivers) joined(ctx context.Context, origin spec.ServerName, roomID, userID string) (persistence.RoomNID, error) {
	nid, version, err := r.Members.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, errEDU("unknown room " + roomID)
	}
	if err != nil {
		return 0, err
	}
	if r.aclAllows != nil {
		allowed, err := r.aclAllows(ctx, roomID, nid, version, origin)
		if err != nil {
			return 0, err
		}
		if !allowed {
			return 0, errEDU("the server ACL of " + roomID + " denies the origin")
		}
	}
	m, err := r.Members.MembershipOf(ctx, nid, userID)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && m.Membership != "join") {
		return 0, errEDU(userID + " is not joined to " + roomID)
	}
	if err != nil {
		return 0, err
	}
	return nid, nil
}

// typing: {"room_id", "user_id", "typing"}.
func (r *EDUReceivers) typing(ctx context.Context, origin spec.ServerName, content json.RawMessage) error {
	if r.Typing == nil || r.Members == nil {
		return errEDU("typing is not taken")
	}
	var c struct {
		RoomID string `json:"room_id"`
		UserID string `json:"user_id"`
		Typing *bool  `json:"typing"`
	}
	if err := json.Unmarshal(content, &c); err != nil || c.Typing == nil {
		return errEDU("malformed m.typing")
	}
	if err := userOf(origin, c.UserID); err != nil {
		return err
	}
	if _, err := r.joined(ctx, origin, c.RoomID, c.UserID); err != nil {
		return err
	}
	r.Typing.Set(c.RoomID, c.UserID, *c.Typing, remoteTypingTimeout)
	return nil
}

// receiptEntry is one user's receipt in an m.receipt EDU.
type receiptEntry struct {
	EventIDs []string `json:"event_ids"`
	Data     struct {
		TS       int64  `json:"ts"`
		ThreadID string `json:"thread_id"`
	} `json:"data"`
}

// receipts: {room ID: {"m.read": {user ID: receiptEntry}}}. Only m.read
// is taken: private receipts never leave their server, and other types
// are not specified.
func (r *EDUReceivers) receipts(ctx context.Context, origin spec.ServerName, content json.RawMessage) error {
	if r.Receipts == nil || r.Members == nil {
		return errEDU("receipts are not taken")
	}
	var rooms map[string]map[string]json.RawMessage
	if err := json.Unmarshal(content, &rooms); err != nil {
		return errEDU("malformed m.receipt")
	}
	for roomID, byType := range rooms {
		var users map[string]receiptEntry
		if raw, ok := byType["m.read"]; !ok || json.Unmarshal(raw, &users) != nil {
			continue
		}
		var latest persistence.StreamPos
		for userID, e := range users {
			if err := r.receipt(ctx, origin, roomID, userID, e, &latest); err != nil {
				var refused errEDU
				if !errors.As(err, &refused) {
					return err
				}
				zerolog.Ctx(ctx).Info().Err(err).Str("origin", string(origin)).Msg("dropped a receipt")
			}
		}
		if latest > 0 && r.Publish != nil {
			r.Publish.Publish(&messages.RoomAdvanced{RoomId: roomID, StreamPos: int64(latest)})
		}
	}
	return nil
}

func (r *EDUReceivers) receipt(ctx context.Context, origin spec.ServerName, roomID, userID string, e receiptEntry, latest *persistence.StreamPos) error {
	if err := userOf(origin, userID); err != nil {
		return err
	}
	if len(e.EventIDs) == 0 || !strings.HasPrefix(e.EventIDs[0], "$") {
		return errEDU("a receipt without an event ID")
	}
	if t := e.Data.ThreadID; t != "" && t != "main" && !strings.HasPrefix(t, "$") {
		return errEDU("a receipt with a bad thread_id")
	}
	nid, err := r.joined(ctx, origin, roomID, userID)
	if err != nil {
		return err
	}
	ts := e.Data.TS
	if ts <= 0 {
		ts = time.Now().UnixMilli()
	}
	pos, err := r.Receipts.PutReceipt(ctx, persistence.Receipt{
		RoomNID: nid, RoomID: roomID, UserID: userID, Type: "m.read", ThreadID: e.Data.ThreadID, EventID: e.EventIDs[0], TS: ts,
	})
	if err != nil {
		return err
	}
	*latest = max(*latest, pos)
	return nil
}

// presence: {"push": [{"user_id", "presence", "status_msg",
// "last_active_ago", "currently_active"}]}.
func (r *EDUReceivers) presence(ctx context.Context, origin spec.ServerName, content json.RawMessage) error {
	if r.Presence == nil || r.Users == nil {
		return nil // presence is off here: nothing to show anyone
	}
	var c struct {
		Push []struct {
			UserID          string  `json:"user_id"`
			Presence        string  `json:"presence"`
			StatusMsg       *string `json:"status_msg"`
			LastActiveAgo   int64   `json:"last_active_ago"`
			CurrentlyActive bool    `json:"currently_active"`
		} `json:"push"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return errEDU("malformed m.presence")
	}
	if len(c.Push) > maxPresencePush {
		return errEDU("too many presence updates in one EDU")
	}
	now := time.Now()
	for _, p := range c.Push {
		if userOf(origin, p.UserID) != nil {
			continue
		}
		switch p.Presence {
		case "online", "unavailable", "offline":
		default:
			continue
		}
		rooms, err := r.joinedRooms(ctx, p.UserID)
		if err != nil {
			return err
		}
		if len(rooms) == 0 {
			continue
		}
		ago := time.Duration(max(p.LastActiveAgo, 0)) * time.Millisecond
		r.Presence.SetRemote(p.UserID, p.Presence, p.StatusMsg, now.Add(-ago), p.CurrentlyActive)
	}
	return nil
}

// deviceList: m.device_list_update and m.signing_key_update both say that
// the user's keys changed. This server keeps no copy of remote keys (a
// query asks the user's server), so it only records the change, which the
// next sync of the local users sharing a room with the user reports.
func (r *EDUReceivers) deviceList(ctx context.Context, origin spec.ServerName, content json.RawMessage) error {
	if r.DeviceLists == nil || r.Users == nil {
		return errEDU("device list updates are not taken")
	}
	var c struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return errEDU("malformed device list update")
	}
	if err := userOf(origin, c.UserID); err != nil {
		return err
	}
	rooms, err := r.joinedRooms(ctx, c.UserID)
	if err != nil {
		return err
	}
	if len(rooms) == 0 {
		return errEDU("the user shares no room with this server's users")
	}
	pos, err := r.DeviceLists.RecordDeviceListChange(ctx, c.UserID)
	if err != nil {
		return err
	}
	if r.Publish != nil {
		for _, roomID := range rooms {
			r.Publish.Publish(&messages.RoomAdvanced{RoomId: roomID, StreamPos: int64(pos)})
		}
	}
	return nil
}

// joinedRooms returns the rooms the user is joined to, as this server
// knows them.
func (r *EDUReceivers) joinedRooms(ctx context.Context, userID string) ([]string, error) {
	ms, err := r.Users.MembershipsForUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	var rooms []string
	for _, m := range ms {
		if m.Membership == "join" {
			rooms = append(rooms, m.RoomID)
		}
	}
	return rooms, nil
}

// toDevice: {"sender", "type", "message_id", "messages": {user ID:
// {device ID or "*": content}}}. Messages for users of other servers are
// dropped; a message ID seen again from the same origin is not delivered
// twice.
func (r *EDUReceivers) toDevice(ctx context.Context, origin, self spec.ServerName, content json.RawMessage, seen *messageIDs) error {
	if r.ToDevice == nil {
		return errEDU("to-device messages are not taken")
	}
	var c struct {
		Sender    string                                `json:"sender"`
		Type      string                                `json:"type"`
		MessageID string                                `json:"message_id"`
		Messages  map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(content, &c); err != nil || c.Type == "" || c.MessageID == "" {
		return errEDU("malformed m.direct_to_device")
	}
	if err := userOf(origin, c.Sender); err != nil {
		return err
	}
	key := string(origin) + "\x00" + c.Sender + "\x00" + c.MessageID
	if seen.has(key) {
		return nil
	}
	var msgs []persistence.ToDeviceMessage
	for userID, byDevice := range c.Messages {
		u, err := spec.NewUserID(userID, true)
		if err != nil || u.Domain() != self {
			continue
		}
		for deviceID, body := range byDevice {
			if len(body) == 0 || body[0] != '{' {
				continue
			}
			targets := []string{deviceID}
			if deviceID == "*" {
				devices, err := r.ToDevice.ListDevices(ctx, u.Local())
				if err != nil {
					return err
				}
				targets = targets[:0]
				for _, d := range devices {
					targets = append(targets, d.DeviceID)
				}
			}
			for _, d := range targets {
				msgs = append(msgs, persistence.ToDeviceMessage{UserID: userID, DeviceID: d, Sender: c.Sender, Type: c.Type, Content: body})
			}
			if len(msgs) > maxEDUToDeviceMessages {
				return errEDU("too many to-device messages in one EDU")
			}
		}
	}
	if len(msgs) > 0 {
		positions, err := r.ToDevice.SendToDevice(ctx, msgs)
		if err != nil {
			return err
		}
		if r.Publish != nil {
			latest := map[string]persistence.StreamPos{}
			for i, m := range msgs {
				latest[m.UserID] = max(latest[m.UserID], positions[i])
			}
			for userID, pos := range latest {
				r.Publish.Publish(&messages.RoomAdvanced{StreamPos: int64(pos), Users: []string{userID}})
			}
		}
	}
	seen.add(key)
	return nil
}

// messageIDs remembers the to-device message IDs delivered lately, so
// that a transaction sent again (its reply lost, its ID new) delivers
// nothing twice.
type messageIDs struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// maxMessageIDs bounds the memory of delivered message IDs.
const maxMessageIDs = 1 << 16

func (m *messageIDs) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ids[key]
	return ok
}

func (m *messageIDs) add(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil || len(m.ids) >= maxMessageIDs {
		m.ids = map[string]struct{}{}
	}
	m.ids[key] = struct{}{}
}
