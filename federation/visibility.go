package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// historyFilter decides, event by event, whether a server may see an
// event whole or only redacted (Synapse's filter_events_for_server): the
// room's history visibility in the state before the event decides.
// world_readable and shared events are visible to any server the room
// lets read it; joined (invited) events only to a server one of whose
// users was joined (or invited, for invited) in that state. Outliers,
// whose state is not known here, count as shared.
type historyFilter struct {
	reads  RoomEventReader
	room   *roomView
	origin spec.ServerName
	// users are the origin's users with a membership row in the room:
	// every user who was ever a member has one, so they are the only
	// ones who can have been members at an event. Read once, lazily.
	users     []string
	usersRead bool
	// bySnapshot caches the answer per state before an event.
	bySnapshot map[persistence.StateSnapshotNID]bool
}

func (s *Server) historyFilter(room *roomView, origin spec.ServerName) *historyFilter {
	return &historyFilter{reads: s.roomEvents, room: room, origin: origin, bySnapshot: map[persistence.StateSnapshotNID]bool{}}
}

// visible says whether the origin may see ev whole.
func (f *historyFilter) visible(ctx context.Context, ev *persistence.StoredEvent) (bool, error) {
	if ev.StreamPos < 0 || ev.StateBefore == 0 {
		return true, nil // an outlier, or the create event
	}
	if v, ok := f.bySnapshot[ev.StateBefore]; ok {
		return v, nil
	}
	v, err := f.visibleAt(ctx, ev.StateBefore)
	if err != nil {
		return false, err
	}
	f.bySnapshot[ev.StateBefore] = v
	return v, nil
}

func (f *historyFilter) visibleAt(ctx context.Context, snapshot persistence.StateSnapshotNID) (bool, error) {
	hv := "shared" // the spec's default
	content, err := f.stateContent(ctx, snapshot, spec.MRoomHistoryVisibility, "")
	if err != nil {
		return false, err
	}
	if content != nil {
		var c struct {
			HistoryVisibility string `json:"history_visibility"`
		}
		if json.Unmarshal(content, &c) == nil && c.HistoryVisibility != "" {
			hv = c.HistoryVisibility
		}
	}
	switch hv {
	case "world_readable", "shared":
		return true, nil
	case "invited", "joined":
	default:
		// An unknown value: clients treat it as shared; so does Synapse.
		return true, nil
	}
	if err := f.readUsers(ctx); err != nil {
		return false, err
	}
	for _, user := range f.users {
		content, err := f.stateContent(ctx, snapshot, spec.MRoomMember, user)
		if err != nil {
			return false, err
		}
		var c struct {
			Membership string `json:"membership"`
		}
		if content == nil || json.Unmarshal(content, &c) != nil {
			continue
		}
		if c.Membership == spec.Join || (hv == "invited" && c.Membership == spec.Invite) {
			return true, nil
		}
	}
	return false, nil
}

func (f *historyFilter) readUsers(ctx context.Context) error {
	if f.usersRead {
		return nil
	}
	ms, err := f.reads.RoomMemberships(ctx, f.room.nid)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if _, domain, ok := strings.Cut(m.UserID, ":"); ok && spec.ServerName(domain) == f.origin {
			f.users = append(f.users, m.UserID)
		}
	}
	f.usersRead = true
	return nil
}

// stateContent is the content of the state event (type, key) in the
// snapshot as the room holds it (redacted when redacted), nil when none.
func (f *historyFilter) stateContent(ctx context.Context, snapshot persistence.StateSnapshotNID, eventType, stateKey string) (json.RawMessage, error) {
	ev, err := f.reads.StateEventAt(ctx, snapshot, eventType, stateKey)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	j, err := pduJSON(f.room.version, ev)
	if err != nil {
		return nil, err
	}
	var c struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(j, &c); err != nil {
		return nil, fmt.Errorf("event %s: %w", ev.EventID, err)
	}
	return c.Content, nil
}

// filteredPDUs is pdus with the events the origin may not see redacted.
func (f *historyFilter) filteredPDUs(ctx context.Context, evs []*dagEvent) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(evs))
	for _, ev := range evs {
		j, err := f.pdu(ctx, ev.Stored)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// pdu is one event as the origin may see it.
func (f *historyFilter) pdu(ctx context.Context, ev *persistence.StoredEvent) (json.RawMessage, error) {
	visible, err := f.visible(ctx, ev)
	if err != nil {
		return nil, err
	}
	if visible {
		return pduJSON(f.room.version, ev)
	}
	red, err := f.room.version.RedactEventJSON(ev.JSON)
	if err != nil {
		return nil, fmt.Errorf("redacting %s: %w", ev.EventID, err)
	}
	return red, nil
}
