package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// Unread notification counts, derived when a user syncs a room: the
// events after the user's read receipt (or join) evaluated against the
// user's push rules. A send costs nothing per member; each member's sync
// pays for the events they have not read, at most maxUnreadScan of them.

// maxUnreadScan bounds the events one room's count reads; past it the
// count says maxUnreadScan.
const maxUnreadScan = 100

// defaultRoomNotifyLevel is the power level @room needs without a
// notifications.room entry in the room's power levels.
const defaultRoomNotifyLevel = 50

// unreadCounts returns the room's unread_notifications for the user.
func (s *Server) unreadCounts(ctx context.Context, userID string, m persistence.Membership, to persistence.StreamPos) (map[string]int, error) {
	counts := map[string]int{"highlight_count": 0, "notification_count": 0}
	read, err := s.readUpTo(ctx, userID, m.RoomNID)
	if err != nil {
		return nil, err
	}
	from := max(m.StreamPos, read) // the join: nothing before it is unread
	if from >= to {
		return counts, nil
	}
	rules, err := s.compiledPushRules(ctx, userID)
	if err != nil {
		return nil, err
	}
	key := unreadKey{userID, m.RoomNID}
	e, _ := s.unread.get(key, from, rules)
	if limit := maxUnreadScan - e.scanned; e.through < to && limit > 0 {
		evs, err := s.store.RoomEvents(ctx, m.RoomNID, e.through, to, limit, true)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			if err := s.countUnread(ctx, userID, m.RoomNID, rules, evs, &e); err != nil {
				return nil, err
			}
		}
		if len(evs) < limit {
			e.through = to // read everything up to to
		}
		s.unread.put(key, e)
	}
	counts["notification_count"], counts["highlight_count"] = e.notify, e.hilite
	return counts, nil
}

// countUnread evaluates evs (read after e.through) against the user's
// rules and adds them to e.
func (s *Server) countUnread(ctx context.Context, userID string, room persistence.RoomNID, rules *compiledRuleset, evs []persistence.StoredEvent, e *unreadEntry) error {
	pc, levels, err := s.pushContextFor(ctx, userID, room)
	if err != nil {
		return err
	}
	for i := range evs {
		ev := &evs[i]
		e.scanned++
		e.through = ev.StreamPos
		o := eventPushOutcome(rules, pc, levels, ev)
		if o.notify {
			e.notify++
		}
		if o.highlight {
			e.hilite++
		}
	}
	return nil
}

// readUpTo is the position of the event the user's newest read receipt
// in the room marks (0 when none): the events up to it are read.
func (s *Server) readUpTo(ctx context.Context, userID string, room persistence.RoomNID) (persistence.StreamPos, error) {
	readID, err := s.store.LatestReadReceipt(ctx, room, userID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ev, err := s.store.EventByID(ctx, readID)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case ev.RoomNID != room:
		return 0, nil
	}
	return ev.StreamPos, nil
}

// eventPushOutcome evaluates a stored event against the user's rules (pc
// is the user's context in the event's room): the user's own events and
// redacted ones never notify.
func eventPushOutcome(rules *compiledRuleset, pc *pushContext, levels *roomPowerLevels, ev *persistence.StoredEvent) pushOutcome {
	if ev.Sender == pc.userID || ev.RedactedBy != "" {
		return pushOutcome{}
	}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(ev.JSON))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return pushOutcome{}
	}
	pc.senderCanNotifyRoom = levels.userLevel(ev.Sender) >= levels.roomNotify
	return rules.evaluate(fields, pc)
}

// compiledPushRules returns the user's compiled ruleset, from the cache.
func (s *Server) compiledPushRules(ctx context.Context, userID string) (*compiledRuleset, error) {
	if rs := s.pushCache.get(userID); rs != nil {
		return rs, nil
	}
	rules, err := s.pushRules(ctx, userID)
	if err != nil {
		return nil, err
	}
	rs := compilePushRules(rules)
	s.pushCache.put(userID, rs)
	return rs, nil
}

// roomPowerLevels is what the sender_notification_permission condition
// reads of the room's power levels.
type roomPowerLevels struct {
	users        map[string]json.Number
	usersDefault json.Number
	roomNotify   int64
}

func (l *roomPowerLevels) userLevel(userID string) int64 {
	v, ok := l.users[userID]
	if !ok {
		v = l.usersDefault
	}
	n, _ := v.Int64()
	return n
}

// pushContextFor reads what the conditions need of the room: the user's
// display name in it, its joined member count and its power levels.
func (s *Server) pushContextFor(ctx context.Context, userID string, room persistence.RoomNID) (*pushContext, *roomPowerLevels, error) {
	pc := &pushContext{userID: userID}
	member, err := s.store.CurrentStateEvent(ctx, room, spec.MRoomMember, userID)
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return nil, nil, err
	}
	if member != nil {
		var c struct {
			Content struct {
				DisplayName string `json:"displayname"`
			} `json:"content"`
		}
		_ = json.Unmarshal(member.JSON, &c)
		pc.displayName = c.Content.DisplayName
	}
	if pc.memberCount, err = s.store.JoinedMemberCount(ctx, room); err != nil {
		return nil, nil, err
	}
	levels := &roomPowerLevels{usersDefault: "0", roomNotify: defaultRoomNotifyLevel}
	pl, err := s.store.CurrentStateEvent(ctx, room, spec.MRoomPowerLevels, "")
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return nil, nil, err
	}
	if pl != nil {
		var c struct {
			Content struct {
				Users         map[string]json.Number `json:"users"`
				UsersDefault  *json.Number           `json:"users_default"`
				Notifications map[string]json.Number `json:"notifications"`
			} `json:"content"`
		}
		dec := json.NewDecoder(bytes.NewReader(pl.JSON))
		dec.UseNumber()
		if dec.Decode(&c) == nil {
			levels.users = c.Content.Users
			if c.Content.UsersDefault != nil {
				levels.usersDefault = *c.Content.UsersDefault
			}
			if n, ok := c.Content.Notifications["room"]; ok {
				if v, err := n.Int64(); err == nil {
					levels.roomNotify = v
				}
			}
		}
	}
	return pc, levels, nil
}
