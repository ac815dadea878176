package federation

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Outbound EDUs: what this server's users do that other servers should
// see goes into the persistent federation queue (Senders.QueueEDU) for the
// servers that should hear it: typing and public receipts to the room's
// servers; presence, device list and cross-signing key updates to every
// server sharing a room with the user; to-device messages to the servers
// of the users they are for. Only local users' EDUs are sent: the others
// are ignored, so that what remote servers told this one never echoes
// back.

// EDUDestinations is what OutboundEDUs reads of storage
// (persistence.JoinedServers).
type EDUDestinations interface {
	JoinedServersOfRoom(ctx context.Context, roomID string) ([]string, error)
	ServersSharingRoomsWith(ctx context.Context, userID string) ([]string, error)
}

// EDUQueue is where OutboundEDUs puts EDUs: *Senders.
type EDUQueue interface {
	QueueEDU(ctx context.Context, destinations []string, eduType string, content []byte) error
}

// OutboundEDUs queues local users' EDUs for other servers.
type OutboundEDUs struct {
	origin  spec.ServerName
	queue   EDUQueue
	servers EDUDestinations
	now     func() time.Time

	// roomServers caches the servers of rooms for roomServersTTL: typing
	// comes in bursts, and reading a room's servers costs a scan of its
	// members (measured 50 ms on PostgreSQL for 10^5 members).
	mu          sync.Mutex
	roomServers map[string]cachedServers
}

type cachedServers struct {
	servers []string
	at      time.Time
}

// roomServersTTL is how long a room's servers are reused: a server that
// just joined may miss this long of typing and receipts, one that just
// left may get this long of them.
const roomServersTTL = 5 * time.Second

// maxCachedRooms bounds the cache; past it, it starts over.
const maxCachedRooms = 10000

// NewOutboundEDUs returns the EDU side of the senders of a server named
// origin.
func NewOutboundEDUs(origin spec.ServerName, queue EDUQueue, servers EDUDestinations) *OutboundEDUs {
	return &OutboundEDUs{origin: origin, queue: queue, servers: servers, now: time.Now, roomServers: map[string]cachedServers{}}
}

// serversOfRoom returns the room's joined servers, from the cache when
// fresh.
func (e *OutboundEDUs) serversOfRoom(ctx context.Context, roomID string) ([]string, error) {
	now := e.now()
	e.mu.Lock()
	c, ok := e.roomServers[roomID]
	e.mu.Unlock()
	if ok && now.Sub(c.at) < roomServersTTL {
		return c.servers, nil
	}
	servers, err := e.servers.JoinedServersOfRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if len(e.roomServers) >= maxCachedRooms {
		clear(e.roomServers)
	}
	e.roomServers[roomID] = cachedServers{servers: servers, at: now}
	e.mu.Unlock()
	return servers, nil
}

// local says whether userID is a user of this server.
func (e *OutboundEDUs) local(userID string) bool {
	u, err := spec.NewUserID(userID, true)
	return err == nil && u.Domain() == e.origin
}

func (e *OutboundEDUs) toRoom(ctx context.Context, roomID, eduType string, content any) error {
	servers, err := e.serversOfRoom(ctx, roomID)
	if err != nil {
		return fmt.Errorf("federation.OutboundEDUs: %w", err)
	}
	return e.queueTo(ctx, servers, eduType, content)
}

func (e *OutboundEDUs) toSharing(ctx context.Context, userID, eduType string, content any) error {
	servers, err := e.servers.ServersSharingRoomsWith(ctx, userID)
	if err != nil {
		return fmt.Errorf("federation.OutboundEDUs: %w", err)
	}
	return e.queueTo(ctx, servers, eduType, content)
}

// queueTo queues the EDU for the servers other than this one.
func (e *OutboundEDUs) queueTo(ctx context.Context, servers []string, eduType string, content any) error {
	remote := servers[:0:0]
	for _, s := range servers {
		if spec.ServerName(s) != e.origin {
			remote = append(remote, s)
		}
	}
	if len(remote) == 0 {
		return nil
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("federation.OutboundEDUs: %w", err)
	}
	return e.queue.QueueEDU(ctx, remote, eduType, raw)
}

// Typing sends that a local user started or stopped typing in a room.
func (e *OutboundEDUs) Typing(ctx context.Context, roomID, userID string, typing bool) error {
	if !e.local(userID) {
		return nil
	}
	return e.toRoom(ctx, roomID, EDUTyping, map[string]any{"room_id": roomID, "user_id": userID, "typing": typing})
}

// Receipt sends a local user's public read receipt (m.read; a private
// one never leaves this server: the caller does not send it). threadID ""
// is an unthreaded receipt.
func (e *OutboundEDUs) Receipt(ctx context.Context, roomID, userID, eventID, threadID string, ts int64) error {
	if !e.local(userID) {
		return nil
	}
	data := map[string]any{"ts": ts}
	if threadID != "" {
		data["thread_id"] = threadID
	}
	content := map[string]any{roomID: map[string]any{"m.read": map[string]any{
		userID: map[string]any{"event_ids": []string{eventID}, "data": data},
	}}}
	return e.toRoom(ctx, roomID, EDUReceipt, content)
}

// PresenceUpdate is one user's presence as m.presence carries it.
type PresenceUpdate struct {
	UserID          string
	Presence        string
	StatusMsg       *string
	LastActive      time.Time // zero: never active
	CurrentlyActive bool
}

// Presence sends a local user's presence to the servers sharing a room
// with them.
func (e *OutboundEDUs) Presence(ctx context.Context, p PresenceUpdate, now time.Time) error {
	if !e.local(p.UserID) {
		return nil
	}
	push := map[string]any{"user_id": p.UserID, "presence": p.Presence, "currently_active": p.CurrentlyActive}
	if p.StatusMsg != nil {
		push["status_msg"] = *p.StatusMsg
	}
	// last_active_ago is required; a user never active was active long ago.
	ago := int64(24 * time.Hour / time.Millisecond)
	if !p.LastActive.IsZero() {
		ago = max(now.Sub(p.LastActive).Milliseconds(), 0)
	}
	push["last_active_ago"] = ago
	return e.toSharing(ctx, p.UserID, EDUPresence, map[string]any{"push": []any{push}})
}

// DeviceUpdate is one device's change as m.device_list_update carries it.
type DeviceUpdate struct {
	DeviceID    string
	DisplayName string
	Deleted     bool
	// Keys are the device's identity keys; nil when it has none.
	Keys json.RawMessage
}

// DeviceListUpdate sends that a local user's devices changed. streamID is
// the change's position (unique and increasing per user). prev_id is left
// empty: a receiver that keeps a copy of the list then fetches it whole
// (/user/devices) rather than trusting that it saw every earlier update.
func (e *OutboundEDUs) DeviceListUpdate(ctx context.Context, userID string, streamID int64, devices []DeviceUpdate) error {
	if !e.local(userID) || len(devices) == 0 {
		return nil
	}
	servers, err := e.servers.ServersSharingRoomsWith(ctx, userID)
	if err != nil {
		return fmt.Errorf("federation.OutboundEDUs: %w", err)
	}
	for _, d := range devices {
		content := map[string]any{"user_id": userID, "device_id": d.DeviceID, "stream_id": streamID, "prev_id": []int64{}, "deleted": d.Deleted}
		if d.DisplayName != "" {
			content["device_display_name"] = d.DisplayName
		}
		if len(d.Keys) > 0 && !d.Deleted {
			content["keys"] = d.Keys
		}
		if err := e.queueTo(ctx, servers, EDUDeviceListUpdate, content); err != nil {
			return err
		}
	}
	return nil
}

// SigningKeyUpdate sends a local user's new public cross-signing keys
// (master and self-signing; the user-signing key is the user's own
// business). A nil key is left out.
func (e *OutboundEDUs) SigningKeyUpdate(ctx context.Context, userID string, master, selfSigning json.RawMessage) error {
	if !e.local(userID) || (master == nil && selfSigning == nil) {
		return nil
	}
	content := map[string]any{"user_id": userID}
	if master != nil {
		content["master_key"] = master
	}
	if selfSigning != nil {
		content["self_signing_key"] = selfSigning
	}
	return e.toSharing(ctx, userID, EDUSigningKeyUpdate, content)
}

// ToDevice sends a local user's to-device messages for remote users: one
// m.direct_to_device per server, holding the messages for its users.
// Messages for local users (the caller delivers those) and for user IDs
// that are not valid are left out.
func (e *OutboundEDUs) ToDevice(ctx context.Context, sender, eventType string, messages map[string]map[string]json.RawMessage) error {
	if !e.local(sender) {
		return nil
	}
	byServer := map[spec.ServerName]map[string]map[string]json.RawMessage{}
	for userID, devices := range messages {
		u, err := spec.NewUserID(userID, true)
		if err != nil || u.Domain() == e.origin {
			continue
		}
		if byServer[u.Domain()] == nil {
			byServer[u.Domain()] = map[string]map[string]json.RawMessage{}
		}
		byServer[u.Domain()][userID] = devices
	}
	for server, msgs := range byServer {
		content := map[string]any{"sender": sender, "type": eventType, "message_id": newMessageID(), "messages": msgs}
		if err := e.queueTo(ctx, []string{string(server)}, EDUDirectToDevice, content); err != nil {
			return err
		}
	}
	return nil
}

// newMessageID is a random to-device message ID (at most 32 characters).
func newMessageID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
