package httpapi

import (
	"net/http"

	"github.com/soma-chat/soma/persistence"
)

// GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]] and
// GET /rooms/{roomId}/threads, read from the relations projection.
// Pagination tokens are stream tokens, as /messages'.

const (
	defaultRelationsLimit = 10
	maxRelationsLimit     = 1000
	relThread             = "m.thread"
)

// relationsHandler: the children of an event, newest first unless
// dir=f. Only direct children: a recurse request is answered with
// recursion_depth 1 (the spec recommends 3 levels; not done yet).
func (s *Server) relationsHandler(r *http.Request) (int, any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	dir := q.Get("dir")
	if dir == "" {
		dir = "b"
	}
	if dir != "b" && dir != "f" {
		return 0, nil, errInvalidParam("dir must be b or f")
	}
	forward := dir == "f"
	limit, err := readLimit(r, defaultRelationsLimit, maxRelationsLimit)
	if err != nil {
		return 0, nil, err
	}
	a, err := s.readableRoom(r)
	if err != nil {
		return 0, nil, err
	}
	vc := s.newVisibilityChecker(a)
	parent, err := s.visibleEvent(ctx, a, vc, pathParam(r, "eventId"))
	if err != nil {
		return 0, nil, err
	}
	from, to, err := pageRange(q, a.bound, forward)
	if err != nil {
		return 0, nil, err
	}
	relType, evType := pathParam(r, "relType"), pathParam(r, "eventType")

	var page []persistence.StoredEvent
	cursor, exhausted, scanned := from, false, 0
	for len(page) < limit && !exhausted && scanned < maxFilterScan {
		batch := limit - len(page)
		var evs []persistence.StoredEvent
		if forward {
			if cursor >= to {
				exhausted = true
				break
			}
			evs, err = s.store.Relations(ctx, a.nid, parent.EventID, relType, evType, cursor, to, batch, true)
		} else {
			if cursor <= to {
				exhausted = true
				break
			}
			evs, err = s.store.Relations(ctx, a.nid, parent.EventID, relType, evType, to, cursor, batch, false)
		}
		if err != nil {
			return 0, nil, err
		}
		scanned += len(evs)
		exhausted = len(evs) < batch
		for i := range evs {
			ev := &evs[i]
			if forward {
				cursor = ev.StreamPos
			} else {
				cursor = ev.StreamPos - 1
			}
			ok, err := vc.canSee(ctx, ev)
			if err != nil {
				return 0, nil, err
			}
			if ok {
				page = append(page, *ev)
			}
		}
	}
	chunk, err := s.formatTimeline(ctx, a, page)
	if err != nil {
		return 0, nil, err
	}
	resp := map[string]any{"chunk": chunk}
	if !exhausted {
		resp["next_batch"] = streamToken(cursor)
	}
	if tok := q.Get("from"); tok != "" {
		resp["prev_batch"] = tok
	}
	// Mandatory whenever recurse is given: only direct children are read.
	if q.Has("recurse") {
		resp["recursion_depth"] = 1
	}
	return http.StatusOK, resp, nil
}

// threadsHandler: the room's threads, the most recently replied to first,
// each root carrying its m.thread bundled aggregation.
func (s *Server) threadsHandler(r *http.Request) (int, any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	include := q.Get("include")
	if include == "" {
		include = "all"
	}
	if include != "all" && include != "participated" {
		return 0, nil, errInvalidParam("include must be all or participated")
	}
	limit, err := readLimit(r, defaultRelationsLimit, maxRelationsLimit)
	if err != nil {
		return 0, nil, err
	}
	if limit == 0 {
		return 0, nil, errInvalidParam("limit must be greater than zero")
	}
	a, err := s.readableRoom(r)
	if err != nil {
		return 0, nil, err
	}
	// A token is the latest reply of the last thread sent: the next page
	// holds threads whose latest reply is older.
	before := a.bound + 1
	if tok := q.Get("from"); tok != "" {
		if before, err = parseStreamToken(tok); err != nil {
			return 0, nil, err
		}
		before = min(before, a.bound+1)
	}
	participant := ""
	if include == "participated" {
		participant = a.userID
	}
	threads, err := s.store.Threads(ctx, a.nid, participant, before, a.bound, limit)
	if err != nil {
		return 0, nil, err
	}
	vc := s.newVisibilityChecker(a)
	roots := make([]persistence.StoredEvent, 0, len(threads))
	for i := range threads {
		ok, err := vc.canSee(ctx, &threads[i].Root)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			roots = append(roots, threads[i].Root)
		}
	}
	// The roots come with their thread summaries bundled.
	chunk, err := s.formatTimeline(ctx, a, roots)
	if err != nil {
		return 0, nil, err
	}
	resp := map[string]any{"chunk": chunk}
	if len(threads) == limit {
		resp["next_batch"] = streamToken(threads[len(threads)-1].Latest)
	}
	return http.StatusOK, resp, nil
}
