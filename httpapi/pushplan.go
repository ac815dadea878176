package httpapi

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/persistence"
)

// Planning push notifications for the node's pusher actor: which of a
// room's new events notify which members with pushers, and the push
// gateway's notify body for each. The cost per commit is one read of the
// events and one read of the room's members' pushers, whatever the room's
// size; rules are evaluated only for members with a pusher (compiled once
// per user and cached, as for unread counts).

// maxPlanEvents bounds the events one plan reads at once.
const maxPlanEvents = 200

// pushNotification is the notify body's "notification" (push gateway API).
type pushNotification struct {
	EventID           string          `json:"event_id"`
	RoomID            string          `json:"room_id"`
	Type              string          `json:"type,omitempty"`
	Sender            string          `json:"sender,omitempty"`
	SenderDisplayName string          `json:"sender_display_name,omitempty"`
	RoomName          string          `json:"room_name,omitempty"`
	RoomAlias         string          `json:"room_alias,omitempty"`
	UserIsTarget      bool            `json:"user_is_target,omitempty"`
	Prio              string          `json:"prio"`
	Content           json.RawMessage `json:"content,omitempty"`
	Counts            map[string]int  `json:"counts"`
	Devices           []pushDevice    `json:"devices"`
}

type pushDevice struct {
	AppID     string                     `json:"app_id"`
	Pushkey   string                     `json:"pushkey"`
	PushkeyTS int64                      `json:"pushkey_ts"` // seconds
	Data      map[string]json.RawMessage `json:"data"`
	Tweaks    map[string]any             `json:"tweaks"`
}

// PlanPushes implements actors.PushPlanner.
func (s *Server) PlanPushes(ctx context.Context, roomID string, from, to persistence.StreamPos) ([]actors.Push, error) {
	room, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pushes []actors.Push
	for from < to {
		evs, err := s.store.RoomEvents(ctx, room, from, to, maxPlanEvents, true)
		if err != nil {
			return pushes, err
		}
		if len(evs) == 0 {
			break
		}
		more, err := s.planEvents(ctx, room, evs)
		if err != nil {
			return pushes, err
		}
		pushes = append(pushes, more...)
		from = evs[len(evs)-1].StreamPos
	}
	return pushes, nil
}

// pushRecipient is a user with pushers, and their context in the room.
type pushRecipient struct {
	userID  string
	pushers []persistence.Pusher
	// inviteOnly: not joined, pushed only the invite naming them.
	inviteOnly bool
	pc         *pushContext
	levels     *roomPowerLevels
	unread     *int // across their rooms, read once per plan
}

// planEvents plans a run of one room's events.
func (s *Server) planEvents(ctx context.Context, room persistence.RoomNID, evs []persistence.StoredEvent) ([]actors.Push, error) {
	pushers, err := s.store.PushersOfJoinedMembers(ctx, room)
	if err != nil {
		return nil, err
	}
	recipients := map[string]*pushRecipient{}
	var order []string
	add := func(p persistence.Pusher, inviteOnly bool) {
		r := recipients[p.UserID]
		if r == nil {
			r = &pushRecipient{userID: p.UserID, inviteOnly: inviteOnly}
			recipients[p.UserID] = r
			order = append(order, p.UserID)
		}
		r.pushers = append(r.pushers, p)
	}
	for _, p := range pushers {
		add(p, false)
	}
	// An invite is pushed to the invitee, who is not a member yet.
	for i := range evs {
		if target, ok := invitee(&evs[i]); ok && recipients[target] == nil {
			theirs, err := s.store.PushersOfUser(ctx, target)
			if err != nil {
				return nil, err
			}
			for _, p := range theirs {
				add(p, true)
			}
		}
	}
	if len(recipients) == 0 {
		return nil, nil
	}
	info := &pushRoomInfo{s: s, room: room, names: map[string]string{}}
	var pushes []actors.Push
	for _, userID := range order {
		r := recipients[userID]
		rules, err := s.compiledPushRules(ctx, userID)
		if err != nil {
			return nil, err
		}
		if r.pc, r.levels, err = s.pushContextFor(ctx, userID, room); err != nil {
			return nil, err
		}
		for i := range evs {
			ev := &evs[i]
			if target, _ := invitee(ev); r.inviteOnly && target != userID {
				continue
			}
			o := eventPushOutcome(rules, r.pc, r.levels, ev)
			if !o.notify {
				continue
			}
			more, err := s.pushesFor(ctx, r, ev, o, info)
			if err != nil {
				return nil, err
			}
			pushes = append(pushes, more...)
		}
	}
	return pushes, nil
}

// invitee is the user an m.room.member invite names.
func invitee(ev *persistence.StoredEvent) (string, bool) {
	if ev.Type != spec.MRoomMember || ev.StateKey == nil {
		return "", false
	}
	var c struct {
		Content struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	if json.Unmarshal(ev.JSON, &c) != nil || c.Content.Membership != spec.Invite {
		return "", false
	}
	return *ev.StateKey, true
}

// pushesFor builds one push per http pusher of the recipient.
func (s *Server) pushesFor(ctx context.Context, r *pushRecipient, ev *persistence.StoredEvent, o pushOutcome, info *pushRoomInfo) ([]actors.Push, error) {
	if r.unread == nil {
		n, err := s.unreadNotifications(ctx, r.userID)
		if err != nil {
			return nil, err
		}
		r.unread = &n
	}
	counts := map[string]int{} // zero counts are left out
	if *r.unread > 0 {
		counts["unread"] = *r.unread
	}
	tweaks := o.tweaks()
	prio := "low"
	if ev.Type == "m.room.encrypted" || o.highlight || tweaks["sound"] != nil {
		prio = "high"
	}
	var full *pushNotification // the event's fields, read once
	var pushes []actors.Push
	for _, p := range r.pushers {
		if p.Kind != pusherKindHTTP {
			continue
		}
		var data map[string]json.RawMessage
		if json.Unmarshal(p.Data, &data) != nil {
			continue
		}
		var rawURL, format string
		_ = json.Unmarshal(data["url"], &rawURL)
		_ = json.Unmarshal(data["format"], &format)
		if _, err := pushGatewayURL(rawURL); err != nil {
			continue
		}
		delete(data, "url")
		n := pushNotification{EventID: ev.EventID, RoomID: ev.RoomID, Prio: prio, Counts: counts}
		if format != pusherFormatOnly {
			if full == nil {
				var err error
				if full, err = info.eventFields(ctx, ev, r.userID); err != nil {
					return nil, err
				}
			}
			n = *full
			n.Prio, n.Counts = prio, counts
		}
		n.Devices = []pushDevice{{AppID: p.AppID, Pushkey: p.Pushkey, PushkeyTS: p.PushkeyTS / 1000, Data: data, Tweaks: tweaks}}
		body, err := json.Marshal(map[string]any{"notification": n})
		if err != nil {
			return nil, err
		}
		pushes = append(pushes, actors.Push{
			UserID: r.userID, AppID: p.AppID, Pushkey: p.Pushkey, EventID: ev.EventID, URL: rawURL, Body: body,
		})
	}
	return pushes, nil
}

// unreadNotifications is the user's notification count across their
// joined rooms (the badge): each room's unread count as /sync derives it.
func (s *Server) unreadNotifications(ctx context.Context, userID string) (int, error) {
	mems, err := s.store.MembershipsForUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	to, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, m := range mems {
		if m.Membership != spec.Join {
			continue
		}
		c, err := s.unreadCounts(ctx, userID, m, to)
		if err != nil {
			return 0, err
		}
		total += c["notification_count"]
	}
	return total, nil
}

// pushRoomInfo reads what a full notify body says of the room and its
// senders, once per plan.
type pushRoomInfo struct {
	s                   *Server
	room                persistence.RoomNID
	read                bool
	roomName, roomAlias string
	names               map[string]string // sender → display name
}

func (i *pushRoomInfo) eventFields(ctx context.Context, ev *persistence.StoredEvent, userID string) (*pushNotification, error) {
	if !i.read {
		var err error
		if i.roomName, err = i.stateString(ctx, spec.MRoomName, "", "name"); err != nil {
			return nil, err
		}
		if i.roomAlias, err = i.stateString(ctx, spec.MRoomCanonicalAlias, "", "alias"); err != nil {
			return nil, err
		}
		i.read = true
	}
	name, ok := i.names[ev.Sender]
	if !ok {
		var err error
		if name, err = i.stateString(ctx, spec.MRoomMember, ev.Sender, "displayname"); err != nil {
			return nil, err
		}
		i.names[ev.Sender] = name
	}
	var f pduFields
	if err := json.Unmarshal(ev.JSON, &f); err != nil {
		return nil, err
	}
	return &pushNotification{
		EventID: ev.EventID, RoomID: ev.RoomID, Type: ev.Type, Sender: ev.Sender,
		SenderDisplayName: name, RoomName: i.roomName, RoomAlias: i.roomAlias,
		UserIsTarget: ev.Type == spec.MRoomMember && ev.StateKey != nil && *ev.StateKey == userID,
		Content:      f.Content,
	}, nil
}

// stateString reads a string field of a current state event's content
// ("" when the event or the field is missing).
func (i *pushRoomInfo) stateString(ctx context.Context, evType, stateKey, field string) (string, error) {
	ev, err := i.s.store.CurrentStateEvent(ctx, i.room, evType, stateKey)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var c struct {
		Content map[string]any `json:"content"`
	}
	_ = json.Unmarshal(ev.JSON, &c)
	v, _ := c.Content[field].(string)
	return v, nil
}
