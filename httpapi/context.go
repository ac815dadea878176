package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// GET /rooms/{roomId}/context/{eventId} and GET
// /rooms/{roomId}/timestamp_to_event: reads around one event of a room,
// through the same history visibility as /messages.

// readableRoom is the caller's access to the request's room when they may
// read its history: members, those who left (as of leaving) and anyone in
// a world-readable room.
func (s *Server) readableRoom(r *http.Request) (*roomAccess, error) {
	a, err := s.accessFor(r.Context(), pathParam(r, "roomId"), callerFrom(r.Context()).UserID)
	if err != nil {
		return nil, err
	}
	if a.current == "" || a.current == "invite" || a.current == "knock" {
		if ok, err := s.canReadState(r.Context(), a); err != nil || !ok {
			if err == nil {
				err = errNotInRoom
			}
			return nil, err
		}
	}
	return a, nil
}

// visibleEvent is an event of the room the caller may see; M_NOT_FOUND
// alike for unknown events, other rooms' events and invisible ones.
func (s *Server) visibleEvent(ctx context.Context, a *roomAccess, vc *visibilityChecker, eventID string) (*persistence.StoredEvent, error) {
	ev, err := s.store.EventByID(ctx, eventID)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && (ev.RoomID != a.roomID || ev.StreamPos > a.bound)) {
		return nil, errNotFound("event not found")
	}
	if err != nil {
		return nil, err
	}
	ok, err := vc.canSee(ctx, ev)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotFound("event not found")
	}
	return ev, nil
}

// readLimit reads a limit parameter: def when absent, at most maxLimit.
func readLimit(r *http.Request, def, maxLimit int) (int, error) {
	l := r.URL.Query().Get("limit")
	if l == "" {
		return def, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 0 {
		return 0, errInvalidParam("limit must be a non-negative integer")
	}
	return min(n, maxLimit), nil
}

// scanRoom reads up to n events the caller may see and the filter allows,
// from cursor towards the bound (exclusive lower, inclusive upper, as
// RoomEvents), at most maxFilterScan of them. The returned cursor is a
// stream position to go on from in the same direction.
func (s *Server) scanRoom(ctx context.Context, a *roomAccess, vc *visibilityChecker, f *roomEventFilter,
	cursor, bound persistence.StreamPos, n int, forward bool,
) ([]persistence.StoredEvent, persistence.StreamPos, error) {
	var out []persistence.StoredEvent
	exhausted, scanned := false, 0
	for len(out) < n && !exhausted && scanned < maxFilterScan {
		batch := n - len(out)
		if f.selective() {
			batch = max(batch, 100)
		}
		var evs []persistence.StoredEvent
		var err error
		if forward {
			if cursor >= bound {
				break
			}
			evs, err = s.store.RoomEvents(ctx, a.nid, cursor, bound, batch, true)
		} else {
			if cursor <= bound {
				break
			}
			evs, err = s.store.RoomEvents(ctx, a.nid, bound, cursor, batch, false)
		}
		if err != nil {
			return nil, 0, err
		}
		scanned += len(evs)
		exhausted = len(evs) < batch
		for i := range evs {
			if len(out) == n {
				break
			}
			ev := &evs[i]
			if forward {
				cursor = ev.StreamPos
			} else {
				cursor = ev.StreamPos - 1
			}
			if !f.allowsEvent(ev) {
				continue
			}
			ok, err := vc.canSee(ctx, ev)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				out = append(out, *ev)
			}
		}
	}
	return out, cursor, nil
}

// formatTimeline formats events of a room as /messages does, for the
// reader a, with prev_content and bundled aggregations.
func (s *Server) formatTimeline(ctx context.Context, a *roomAccess, evs []persistence.StoredEvent) ([]*clientEvent, error) {
	out, err := toClientEvents(evs, true)
	if err != nil {
		return nil, err
	}
	if err := s.addPrevContent(ctx, evs, out); err != nil {
		return nil, err
	}
	if err := s.bundleRelations(ctx, a.userID, a.bound, evs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// contextHandler: GET /rooms/{roomId}/context/{eventId}. The limit is
// shared: half before (rounded down), the rest after. start and end are
// /messages tokens: backwards from start, forwards from end.
func (s *Server) contextHandler(r *http.Request) (int, any, error) {
	ctx := r.Context()
	limit, err := readLimit(r, defaultMessagesLimit, maxMessagesLimit)
	if err != nil {
		return 0, nil, err
	}
	f, err := parseRoomEventFilter(r.URL.Query().Get("filter"))
	if err != nil {
		return 0, nil, err
	}
	if fl := f.Limit; fl != nil && *fl > 0 && r.URL.Query().Get("limit") == "" {
		limit = min(*fl, maxMessagesLimit)
	}
	a, err := s.readableRoom(r)
	if err != nil {
		return 0, nil, err
	}
	vc := s.newVisibilityChecker(a)
	ev, err := s.visibleEvent(ctx, a, vc, pathParam(r, "eventId"))
	if err != nil {
		return 0, nil, err
	}
	nBefore := limit / 2
	var before, after []persistence.StoredEvent
	var startTok, endTok string
	if ev.StreamPos <= 0 {
		// An event from before the room's timeline here (history.go):
		// before it, the walk of the room's graph; after it, this
		// server knows no order but the timeline's, which end starts.
		prev, err := prevEventsOf(ev)
		if err != nil {
			return 0, nil, err
		}
		page := &historyPage{}
		if len(prev) > 0 && nBefore > 0 {
			if page, err = s.walkHistory(ctx, a, vc, f, prev, nBefore); err != nil {
				return 0, nil, err
			}
		} else {
			page.frontier = prev
		}
		before = page.events
		if len(page.frontier) > 0 {
			startTok = historyToken(page.frontier)
		}
		endTok = streamToken(0)
	} else {
		var start, end persistence.StreamPos
		before, start, err = s.scanRoom(ctx, a, vc, f, ev.StreamPos-1, 0, nBefore, false)
		if err != nil {
			return 0, nil, err
		}
		after, end, err = s.scanRoom(ctx, a, vc, f, ev.StreamPos, a.bound, limit-nBefore, true)
		if err != nil {
			return 0, nil, err
		}
		startTok, endTok = streamToken(start), streamToken(end)
	}
	evBefore, err := s.formatTimeline(ctx, a, before)
	if err != nil {
		return 0, nil, err
	}
	evAfter, err := s.formatTimeline(ctx, a, after)
	if err != nil {
		return 0, nil, err
	}
	evOne, err := s.formatTimeline(ctx, a, []persistence.StoredEvent{*ev})
	if err != nil {
		return 0, nil, err
	}

	// The state at the last event returned: after it, so its own state
	// change counts.
	last := *ev
	if len(after) > 0 {
		last = after[len(after)-1]
	}
	snap, err := vc.stateAt(ctx, &last)
	if err != nil {
		return 0, nil, err
	}
	state, err := s.store.SnapshotEvents(ctx, snap)
	if err != nil {
		return 0, nil, err
	}
	if last.StateKey != nil {
		state = overrideState(state, last)
	}
	// The filter applies to the state too; lazy loading keeps only the
	// members the events returned need, whatever the filter says.
	senders := map[string]bool{ev.Sender: true, a.userID: true}
	for _, list := range [][]persistence.StoredEvent{before, after} {
		for i := range list {
			senders[list[i].Sender] = true
		}
	}
	kept := state[:0:0]
	for _, se := range state {
		member := se.Type == spec.MRoomMember && se.StateKey != nil
		switch {
		case f.LazyLoadMembers && member:
			if senders[*se.StateKey] {
				kept = append(kept, se)
			}
		case f.allowsEvent(&se):
			kept = append(kept, se)
		}
	}
	state = kept
	stateOut, err := toClientEvents(state, true)
	if err != nil {
		return 0, nil, err
	}
	resp := map[string]any{
		"end":           endTok,
		"event":         evOne[0],
		"events_before": evBefore,
		"events_after":  evAfter,
		"state":         stateOut,
	}
	if startTok != "" {
		resp["start"] = startTok
	}
	return http.StatusOK, resp, nil
}

// nearTimestampCandidates is how many events timestamp_to_event reads to
// find one the caller may see.
const nearTimestampCandidates = 50

// timestampToEventHandler: GET /rooms/{roomId}/timestamp_to_event. Only
// the events this server stores are searched.
func (s *Server) timestampToEventHandler(r *http.Request) (int, any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	if q.Get("ts") == "" || q.Get("dir") == "" {
		return 0, nil, errMissingParam("ts and dir are required")
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return 0, nil, errInvalidParam("ts must be an integer")
	}
	dir := q.Get("dir")
	if dir != "f" && dir != "b" {
		return 0, nil, errInvalidParam("dir must be f or b")
	}
	a, err := s.readableRoom(r)
	if err != nil {
		return 0, nil, err
	}
	evs, err := s.store.EventsNearTimestamp(ctx, a.nid, ts, dir == "f", a.bound, nearTimestampCandidates)
	if err != nil {
		return 0, nil, err
	}
	vc := s.newVisibilityChecker(a)
	for i := range evs {
		ok, err := vc.canSee(ctx, &evs[i])
		if err != nil {
			return 0, nil, err
		}
		if ok {
			return http.StatusOK, map[string]any{"event_id": evs[i].EventID, "origin_server_ts": evs[i].OriginServerTS}, nil
		}
	}
	return 0, nil, errNotFound("no event found")
}
