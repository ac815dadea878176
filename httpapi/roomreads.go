package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// requestedRoomState is the state of the request's room that the caller
// may see.
func (s *Server) requestedRoomState(r *http.Request) ([]persistence.StoredEvent, error) {
	a, err := s.accessFor(r.Context(), pathParam(r, "roomId"), callerFrom(r.Context()).UserID)
	if err != nil {
		return nil, err
	}
	return s.stateFor(r.Context(), a)
}

// getStateHandler: GET /rooms/{roomId}/state.
func (s *Server) getStateHandler(r *http.Request) (int, any, error) {
	state, err := s.requestedRoomState(r)
	if err != nil {
		return 0, nil, err
	}
	evs, err := toClientEvents(state, true)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, evs, nil
}

// getStateEventHandler: GET /rooms/{roomId}/state/{eventType}/{stateKey}.
func (s *Server) getStateEventHandler(r *http.Request) (int, any, error) {
	state, err := s.requestedRoomState(r)
	if err != nil {
		return 0, nil, err
	}
	typ, key := pathParam(r, "eventType"), pathParam(r, "stateKey")
	for i := range state {
		if state[i].Type == typ && state[i].StateKey != nil && *state[i].StateKey == key {
			ce, err := toClientEvent(&state[i], true)
			if err != nil {
				return 0, nil, err
			}
			if r.URL.Query().Get("format") == "event" {
				return http.StatusOK, ce, nil
			}
			return http.StatusOK, ce.Content, nil
		}
	}
	return 0, nil, errNotFound("no such state event")
}

// getEventHandler: GET /rooms/{roomId}/event/{eventId}.
func (s *Server) getEventHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	a, err := s.accessFor(r.Context(), pathParam(r, "roomId"), c.UserID)
	if err != nil {
		return 0, nil, err
	}
	ev, err := s.store.EventByID(r.Context(), pathParam(r, "eventId"))
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && (ev.RoomID != a.roomID || ev.StreamPos > a.bound)) {
		return 0, nil, errNotFound("event not found")
	}
	if err != nil {
		return 0, nil, err
	}
	ok, err := s.newVisibilityChecker(a).canSee(r.Context(), ev)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, errNotFound("event not found")
	}
	out, err := s.formatTimeline(r.Context(), a, []persistence.StoredEvent{*ev})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out[0], nil
}

// membersHandler: GET /rooms/{roomId}/members.
func (s *Server) membersHandler(r *http.Request) (int, any, error) {
	state, err := s.requestedRoomState(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	want, not := q.Get("membership"), q.Get("not_membership")
	chunk := []*clientEvent{}
	for i := range state {
		if state[i].Type != spec.MRoomMember {
			continue
		}
		m := membershipOf(&state[i])
		if (want != "" && m != want) || (not != "" && m == not) {
			continue
		}
		ce, err := toClientEvent(&state[i], true)
		if err != nil {
			return 0, nil, err
		}
		chunk = append(chunk, ce)
	}
	return http.StatusOK, map[string]any{"chunk": chunk}, nil
}

// joinedMembersHandler: GET /rooms/{roomId}/joined_members.
func (s *Server) joinedMembersHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	a, err := s.accessFor(r.Context(), pathParam(r, "roomId"), c.UserID)
	if err != nil {
		return 0, nil, err
	}
	if a.current != "join" {
		return 0, nil, errForbidden("you are not a member of this room")
	}
	state, err := s.store.CurrentState(r.Context(), a.nid)
	if err != nil {
		return 0, nil, err
	}
	type member struct {
		DisplayName *string `json:"display_name"`
		AvatarURL   *string `json:"avatar_url"`
	}
	joined := map[string]member{}
	for i := range state {
		ev := &state[i]
		if ev.Type != spec.MRoomMember || ev.StateKey == nil || membershipOf(ev) != "join" {
			continue
		}
		var m member
		if dn := contentField(ev, "displayname"); dn != "" {
			m.DisplayName = &dn
		}
		if av := contentField(ev, "avatar_url"); av != "" {
			m.AvatarURL = &av
		}
		joined[*ev.StateKey] = m
	}
	return http.StatusOK, map[string]any{"joined": joined}, nil
}

// joinedRoomsHandler: GET /joined_rooms.
func (s *Server) joinedRoomsHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	ms, err := s.store.MembershipsForUser(r.Context(), c.UserID)
	if err != nil {
		return 0, nil, err
	}
	ids := []string{}
	for _, m := range ms {
		if m.Membership == "join" {
			ids = append(ids, m.RoomID)
		}
	}
	return http.StatusOK, map[string]any{"joined_rooms": ids}, nil
}

const (
	defaultMessagesLimit = 10
	maxMessagesLimit     = 1000
)

// messagesHandler: GET /rooms/{roomId}/messages. Tokens are stream
// positions, unique per event, so pages never skip or repeat an event
// whatever the events' depths.
func (s *Server) messagesHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	q := r.URL.Query()
	q0 := q
	dir := q.Get("dir")
	if dir != "b" && dir != "f" {
		return 0, nil, errInvalidParam("dir must be b or f")
	}
	limit := defaultMessagesLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return 0, nil, errInvalidParam("limit must be a non-negative integer")
		}
		limit = min(n, maxMessagesLimit)
	}
	f, err := parseRoomEventFilter(q.Get("filter"))
	if err != nil {
		return 0, nil, err
	}
	if fl := f.Limit; fl != nil && *fl > 0 {
		if q.Get("limit") == "" {
			limit = min(*fl, maxMessagesLimit)
		} else {
			limit = min(limit, *fl)
		}
	}
	a, err := s.accessFor(r.Context(), pathParam(r, "roomId"), c.UserID)
	if err != nil {
		return 0, nil, err
	}
	if a.current == "" || a.current == "invite" || a.current == "knock" {
		if ok, err := s.canReadState(r.Context(), a); err != nil || !ok {
			if err == nil {
				err = errNotInRoom
			}
			return 0, nil, err
		}
	}
	forward := dir == "f"
	// A history token (see history.go) is a place before the timeline:
	// backwards, the walk goes on from it; forwards, the timeline starts
	// after it.
	var frontier []string
	inHistory := false
	if tok := q.Get("from"); tok != "" {
		fr, ok, err := parseHistoryToken(tok)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			frontier, inHistory = fr, !forward
			q = cloneValues(q)
			q.Del("from")
			if !forward {
				q.Set("from", streamToken(0))
			}
		}
	}
	toGiven := q.Get("to") != ""
	if _, ok, _ := parseHistoryToken(q.Get("to")); ok {
		q = cloneValues(q)
		q.Del("to") // as far as the timeline goes
	}
	from, to, err := pageRange(q, a.bound, forward)
	if err != nil {
		return 0, nil, err
	}

	// A filter that drops events reads in larger batches, at most
	// maxFilterScan events a page: a page cut there is shorter than limit
	// but carries an end token to go on from.
	vc := s.newVisibilityChecker(a)
	returned := []persistence.StoredEvent{}
	cursor, exhausted, scanned := from, inHistory, 0
	for len(returned) < limit && !exhausted && scanned < maxFilterScan {
		batch := limit - len(returned)
		if f.selective() {
			batch = max(batch, 100)
		}
		var evs []persistence.StoredEvent
		if forward {
			if cursor >= to {
				break
			}
			evs, err = s.store.RoomEvents(r.Context(), a.nid, cursor, to, batch, true)
		} else {
			if cursor <= to {
				exhausted = true
				break
			}
			evs, err = s.store.RoomEvents(r.Context(), a.nid, to, cursor, batch, false)
		}
		if err != nil {
			return 0, nil, err
		}
		scanned += len(evs)
		exhausted = len(evs) < batch
		for i := range evs {
			ev := &evs[i]
			if len(returned) == limit {
				exhausted = false // events remain after the page
				break
			}
			if forward {
				cursor = ev.StreamPos
			} else {
				cursor = ev.StreamPos - 1
			}
			if !f.allowsEvent(ev) {
				continue
			}
			ok, err := vc.canSee(r.Context(), ev)
			if err != nil {
				return 0, nil, err
			}
			if !ok {
				continue
			}
			returned = append(returned, *ev)
		}
	}
	// Backwards past the start of the timeline, the room's history goes
	// on before it (a room joined over federation).
	var endToken string
	if !exhausted {
		endToken = streamToken(cursor)
	} else if !forward && !toGiven && len(returned) < limit {
		if !inHistory {
			if frontier, err = s.historyStart(r.Context(), a); err != nil {
				return 0, nil, err
			}
		}
		if len(frontier) > 0 {
			// Nothing to fetch when the caller may see none of it.
			visible, err := vc.outliersVisible(r.Context())
			if err != nil {
				return 0, nil, err
			}
			if !visible {
				frontier = nil
			}
		}
		if len(frontier) > 0 {
			page, err := s.walkHistory(r.Context(), a, vc, f, frontier, limit-len(returned))
			if err != nil {
				return 0, nil, err
			}
			returned = append(returned, page.events...)
			// When no server answers, a page with events ends where
			// the walk stopped (the next page asks again); an empty
			// page ends the pagination, so that clients do not spin.
			if len(page.frontier) > 0 && !(page.unreachable && len(returned) == 0) {
				endToken = historyToken(page.frontier)
			}
		}
	}
	chunk, err := s.formatTimeline(r.Context(), a, returned)
	if err != nil {
		return 0, nil, err
	}
	start := streamToken(from)
	if inHistory {
		start = q0.Get("from")
	}
	resp := map[string]any{"start": start, "chunk": chunk}
	if f.LazyLoadMembers {
		state, err := s.chunkMembers(r.Context(), vc, returned)
		if err != nil {
			return 0, nil, err
		}
		resp["state"] = state
	}
	if endToken != "" {
		resp["end"] = endToken
	}
	return http.StatusOK, resp, nil
}

func cloneValues(q url.Values) url.Values {
	c := make(url.Values, len(q))
	for k, v := range q {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// chunkMembers is /messages' lazy-loaded state: the member events of the
// senders of the returned events, as of the last of them. They are sent
// every time (the spec lets a server leave out those sent before).
func (s *Server) chunkMembers(ctx context.Context, vc *visibilityChecker, evs []persistence.StoredEvent) ([]*clientEvent, error) {
	out := []*clientEvent{}
	if len(evs) == 0 {
		return out, nil
	}
	last := &evs[len(evs)-1]
	snap, err := vc.stateAt(ctx, last)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := range evs {
		sender := evs[i].Sender
		if seen[sender] {
			continue
		}
		seen[sender] = true
		ev, err := s.store.StateEventAt(ctx, snap, spec.MRoomMember, sender)
		if errors.Is(err, persistence.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ce, err := toClientEvent(ev, true)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}

// pageRange reads the from and to tokens of a paginated read (/messages,
// /relations) in direction forward, for a user who may read up to bound:
// from defaults to the start (forward) or the bound, to to the bound or the
// start; positions past the bound do not exist for this user.
func pageRange(q url.Values, bound persistence.StreamPos, forward bool) (from, to persistence.StreamPos, err error) {
	from, to = bound, 0
	if forward {
		from, to = 0, bound
	}
	if tok := q.Get("from"); tok != "" {
		if from, err = parseStreamToken(tok); err != nil {
			return 0, 0, err
		}
	}
	from = min(from, bound)
	if tok := q.Get("to"); tok != "" {
		t, err := parseStreamToken(tok)
		if err != nil {
			return 0, 0, err
		}
		to = t
		if forward {
			to = min(t, bound)
		}
	}
	return from, to, nil
}
