package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/soma-chat/soma/persistence"
)

// GET /notifications: the events of the user's joined rooms that the
// user's push rules say notify, newest first.
//
// The list is derived when it is read, as unread counts are (unread.go),
// not written to a notifications table when events commit. A table would
// cost every send one rule evaluation and one row per member — a message
// in a 1,000-member room would be 1,000 rule evaluations and rows on the
// send path — for a list few clients ever ask for. Read-time derivation
// costs the reader instead, and is bounded per request: one request reads
// at most maxNotificationScan events of the user's rooms (newest first,
// in batches, one query per batch across all the rooms), evaluates them
// against the user's rules compiled once and cached, and reads each room's
// push context and read receipt once. A page that reaches the bound before
// filling up ends early with a next_token, so the client pages on.
//
// The price: notifications follow the user's current rules and current
// membership (a left room's notifications are gone), and the rules are
// evaluated against the room's current member count and power levels.

const (
	defaultNotificationsLimit = 20
	maxNotificationsLimit     = 100
	// notificationScanBatch is how many events one read takes;
	// maxNotificationScan bounds the events one request evaluates.
	notificationScanBatch = 100
	maxNotificationScan   = 1000
)

// notification is one entry of GET /notifications.
type notification struct {
	Actions []any        `json:"actions"`
	Event   *clientEvent `json:"event"`
	Read    bool         `json:"read"`
	RoomID  string       `json:"room_id"`
	TS      int64        `json:"ts"`
}

type notificationsPage struct {
	NextToken     string          `json:"next_token,omitempty"`
	Notifications []*notification `json:"notifications"`
}

// notificationRoom is what evaluating a room's events for the user needs,
// read once per request.
type notificationRoom struct {
	pc     *pushContext
	levels *roomPowerLevels
	read   persistence.StreamPos
}

func (s *Server) notificationsHandler(r *http.Request) (int, any, error) {
	ctx := r.Context()
	c := callerFrom(ctx)
	q := r.URL.Query()
	limit := defaultNotificationsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, nil, errInvalidParam("limit must be a positive integer")
		}
		limit = min(n, maxNotificationsLimit)
	}
	onlyHighlight := q.Get("only") == "highlight"
	to, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return 0, nil, err
	}
	if v := q.Get("from"); v != "" {
		from, err := strconv.ParseInt(v, 10, 64)
		if err != nil || from < 1 {
			return 0, nil, errInvalidParam("from is not a token this endpoint gave")
		}
		to = min(to, persistence.StreamPos(from-1))
	}
	mems, err := s.store.MembershipsForUser(ctx, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	joined := map[persistence.RoomNID]persistence.Membership{}
	var rooms []persistence.RoomNID
	floor := to // nothing before the earliest join is scanned
	for _, m := range mems {
		if m.Membership == "join" {
			joined[m.RoomNID] = m
			rooms = append(rooms, m.RoomNID)
			floor = min(floor, m.StreamPos)
		}
	}
	rules, err := s.compiledPushRules(ctx, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	page := notificationsPage{Notifications: []*notification{}}
	perRoom := map[persistence.RoomNID]*notificationRoom{}
	cursor, scanned, exhausted := to, 0, false
	for len(page.Notifications) < limit && !exhausted && scanned < maxNotificationScan {
		evs, err := s.store.EventsInRooms(ctx, rooms, floor, cursor, notificationScanBatch)
		if err != nil {
			return 0, nil, err
		}
		exhausted = len(evs) < notificationScanBatch
		for i := range evs {
			ev := &evs[i]
			cursor, scanned = ev.StreamPos-1, scanned+1
			if ev.StreamPos <= joined[ev.RoomNID].StreamPos {
				continue // before the user joined
			}
			nr, err := s.notificationRoomFor(ctx, c.UserID, ev.RoomNID, perRoom)
			if err != nil {
				return 0, nil, err
			}
			o := eventPushOutcome(rules, nr.pc, nr.levels, ev)
			if !o.notify || (onlyHighlight && !o.highlight) {
				continue
			}
			ce, err := toClientEvent(ev, false)
			if err != nil {
				return 0, nil, err
			}
			page.Notifications = append(page.Notifications, &notification{
				Actions: o.actions, Event: ce, Read: ev.StreamPos <= nr.read, RoomID: ev.RoomID, TS: ev.OriginServerTS,
			})
			if len(page.Notifications) == limit {
				exhausted = exhausted && i == len(evs)-1
				break
			}
		}
	}
	if !exhausted && cursor > floor {
		page.NextToken = strconv.FormatInt(int64(cursor)+1, 10)
	}
	return http.StatusOK, page, nil
}

func (s *Server) notificationRoomFor(ctx context.Context, userID string, room persistence.RoomNID, cache map[persistence.RoomNID]*notificationRoom) (*notificationRoom, error) {
	if nr := cache[room]; nr != nil {
		return nr, nil
	}
	pc, levels, err := s.pushContextFor(ctx, userID, room)
	if err != nil {
		return nil, err
	}
	read, err := s.readUpTo(ctx, userID, room)
	if err != nil {
		return nil, err
	}
	nr := &notificationRoom{pc: pc, levels: levels, read: read}
	cache[room] = nr
	return nr, nil
}
