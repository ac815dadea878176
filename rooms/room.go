// Package rooms is the room domain and the room actor: building, signing and
// authorising events against a room's current state, applying them, and the
// actor that serialises a room's commands, persists them and notifies.
package rooms

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// MaxPDUBytes is the spec's limit on an event's size as a PDU.
const MaxPDUBytes = 65536

// SupportedVersions are the room versions this server creates and joins.
var SupportedVersions = map[string]bool{"10": true, "11": true}

// Signer signs the events this server builds.
type Signer struct {
	ServerName spec.ServerName
	KeyID      gomatrixserverlib.KeyID
	Key        ed25519.PrivateKey
}

// Room is one room's live state: everything needed to build and authorise
// its next event, and to tell storage where its state lives.
type Room struct {
	ID          string
	NID         persistence.RoomNID
	Version     gomatrixserverlib.IRoomVersion
	State       State
	Extremities []string
	Depth       int64
	Snapshot    persistence.StateSnapshotNID
	Blocks      []persistence.StateBlockNID
	Epoch       int64
	// Members indexes the membership in State.
	Members *Members
}

// NewRoom returns a room that does not exist yet: its first event must be
// its m.room.create.
func NewRoom(id, version string) (*Room, error) {
	if !SupportedVersions[version] {
		return nil, &Error{Status: 400, ErrCode: "M_UNSUPPORTED_ROOM_VERSION", Message: fmt.Sprintf("room version %q is not supported", version)}
	}
	return &Room{
		ID:      id,
		Version: gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version)),
		State:   State{},
		Members: newMembers(),
	}, nil
}

// LoadRoom claims the room for this activation (bumping its epoch, so that
// any older activation can no longer commit) and loads its current state.
// A stub (Exists is false) loads too.
// It returns persistence.ErrNotFound for a room that does not exist.
func LoadRoom(ctx context.Context, store persistence.RoomStore, roomID string) (*Room, error) {
	head, err := store.ClaimRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	r, err := NewRoom(head.RoomID, head.Version)
	if err != nil {
		return nil, err
	}
	r.NID, r.Extremities, r.Depth = head.RoomNID, head.Extremities, head.Depth
	r.Snapshot, r.Blocks, r.Epoch = head.Snapshot, head.Blocks, head.Epoch
	events, err := store.SnapshotEvents(ctx, head.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("rooms.LoadRoom: %w", err)
	}
	for _, se := range events {
		ev, err := r.Version.NewEventFromTrustedJSONWithEventID(se.EventID, se.JSON, false)
		if err != nil {
			return nil, fmt.Errorf("rooms.LoadRoom: stored event %s: %w", se.EventID, err)
		}
		r.State[Tuple{EventType: ev.Type(), StateKey: *ev.StateKey()}] = ev
		r.Members.applyEvent(ev)
	}
	// A room without its create event is a stub (see remotemembership.go):
	// it exists only as a local user's invite to, or rejected invite of, a
	// room on another server; nothing can be built in it.
	return r, nil
}

// Exists reports whether the room has its create event.
func (r *Room) Exists() bool { return r.State.Get(spec.MRoomCreate, "") != nil }

// userIDForSender maps sender IDs to user IDs: they are the same in the
// room versions Soma supports (pseudo IDs came with later versions).
func userIDForSender(_ spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

// Build turns what a client asked for into a signed event that follows the
// room's head, and authorises it against the current state. It changes
// nothing: Apply does, once the event is stored.
func (r *Room) Build(c *messages.EventContent, now time.Time, s *Signer) (gomatrixserverlib.PDU, error) {
	if c == nil || c.Type == "" {
		return nil, badJSON("event type is required")
	}
	if !isJSONObject(c.Content) {
		return nil, badJSON("event content must be a JSON object")
	}
	if _, err := spec.NewUserID(c.Sender, true); err != nil {
		return nil, badJSON("invalid sender %q", c.Sender)
	}
	isCreate := c.Type == spec.MRoomCreate && c.StateKey != nil && *c.StateKey == ""
	if isCreate != !r.Exists() {
		if isCreate {
			return nil, &Error{Status: 400, ErrCode: "M_ROOM_IN_USE", Message: "room already exists"}
		}
		return nil, notFound("unknown room %s", r.ID)
	}
	pe := gomatrixserverlib.ProtoEvent{
		SenderID:   c.Sender,
		RoomID:     r.ID,
		Type:       c.Type,
		StateKey:   c.StateKey,
		Content:    spec.RawJSON(c.Content),
		Redacts:    c.Redacts,
		PrevEvents: append([]string{}, r.Extremities...),
		Depth:      r.Depth + 1,
		Version:    r.Version,
	}
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&pe)
	if err != nil {
		return nil, badJSON("%s", err)
	}
	refs, err := needed.AuthEventReferences(r.State)
	if err != nil {
		return nil, fmt.Errorf("rooms.Build: auth events: %w", err)
	}
	pe.AuthEvents = refs
	ev, err := r.Version.NewEventBuilderFromProtoEvent(&pe).Build(now, s.ServerName, s.KeyID, s.Key)
	if err != nil {
		var ve gomatrixserverlib.EventValidationError
		if errors.As(err, &ve) && ve.Code == gomatrixserverlib.EventValidationTooLarge {
			return nil, tooLarge("event is larger than %d bytes", MaxPDUBytes)
		}
		return nil, badJSON("cannot build event: %s", err)
	}
	if err := r.Version.CheckCanonicalJSON(ev.JSON()); err != nil {
		return nil, badJSON("event content is not canonical JSON for room version %s: %s", r.Version.Version(), err)
	}
	if len(ev.JSON()) > MaxPDUBytes {
		return nil, tooLarge("event is larger than %d bytes", MaxPDUBytes)
	}
	if err := gomatrixserverlib.Allowed(ev, r.State, userIDForSender); err != nil {
		var na *gomatrixserverlib.NotAllowed
		if errors.As(err, &na) {
			return nil, forbidden("%s", na.Message)
		}
		return nil, forbidden("%s", err)
	}
	return ev, nil
}

// Apply advances the room past an event built by Build.
func (r *Room) Apply(ev gomatrixserverlib.PDU) {
	if sk := ev.StateKey(); sk != nil {
		r.State[Tuple{EventType: ev.Type(), StateKey: *sk}] = ev
		r.Members.applyEvent(ev)
	}
	r.Extremities = []string{ev.EventID()}
	r.Depth = ev.Depth()
}

func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}
