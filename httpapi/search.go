package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// POST /search: full text search (category room_events) over the rooms the
// caller is in or was in, through the same access and history visibility
// as /messages and /context: a room left counts up to the departure, and
// every event found is checked with the room's visibility checker. The
// index (persistence.EventSearcher) holds bodies, names and topics, and
// forgets redacted events.

const (
	defaultSearchLimit   = 10
	maxSearchLimit       = 50
	defaultSearchContext = 5
	maxSearchContext     = 50
	// maxSearchScan bounds the events one request reads from the index
	// to fill a page the caller may see; past it, next_batch goes on.
	maxSearchScan = 1000
)

// searchRequest is the request body; categories are read one by one so
// that an unknown one is named.
type searchRequest struct {
	SearchCategories map[string]json.RawMessage `json:"search_categories"`
}

// roomEventsCriteria is the room_events category.
type roomEventsCriteria struct {
	SearchTerm   *string          `json:"search_term"`
	Keys         []string         `json:"keys"`
	Filter       *roomEventFilter `json:"filter"`
	OrderBy      string           `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    *struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

// searchHit is an event found that the caller may see.
type searchHit struct {
	ev   persistence.StoredEvent
	rank float64
	a    *roomAccess
	vc   *visibilityChecker
}

// searchHandler: POST /search.
func (s *Server) searchHandler(r *http.Request) (int, any, error) {
	var req searchRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.SearchCategories == nil {
		return 0, nil, errBadJSON("search_categories is required")
	}
	for cat := range req.SearchCategories {
		if cat != "room_events" {
			return 0, nil, errInvalidParam("unknown search category " + strconv.Quote(cat))
		}
	}
	raw, ok := req.SearchCategories["room_events"]
	if !ok {
		return http.StatusOK, map[string]any{"search_categories": map[string]any{}}, nil
	}
	var c roomEventsCriteria
	if err := json.Unmarshal(raw, &c); err != nil || c.SearchTerm == nil {
		return 0, nil, errBadJSON("room_events needs a search_term string and well-typed criteria")
	}
	res, err := s.searchRoomEvents(r, &c)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"search_categories": map[string]any{"room_events": res}}, nil
}

// searchCriteria is room_events checked.
type searchCriteria struct {
	*roomEventsCriteria
	f                       *roomEventFilter
	limit, before, after    int
	byRank                  bool
	groupBy                 []string
	cursorPos, cursorOffset int
}

func checkSearchCriteria(c *roomEventsCriteria, nextBatch string) (*searchCriteria, error) {
	sc := &searchCriteria{roomEventsCriteria: c, f: c.Filter, limit: defaultSearchLimit, before: defaultSearchContext, after: defaultSearchContext}
	if sc.f == nil {
		sc.f = &roomEventFilter{}
	}
	for _, k := range c.Keys {
		if k != persistence.SearchKeyBody && k != persistence.SearchKeyName && k != persistence.SearchKeyTopic {
			return nil, errInvalidParam("unknown search key " + strconv.Quote(k))
		}
	}
	switch c.OrderBy {
	case "", "rank":
		sc.byRank = true
	case "recent":
	default:
		return nil, errInvalidParam("order_by must be rank or recent")
	}
	if l := sc.f.Limit; l != nil {
		if *l < 0 {
			return nil, errInvalidParam("filter.limit must not be negative")
		}
		sc.limit = min(*l, maxSearchLimit)
	}
	if ec := c.EventContext; ec != nil {
		for _, l := range []struct {
			v   *int
			out *int
		}{{ec.BeforeLimit, &sc.before}, {ec.AfterLimit, &sc.after}} {
			if l.v == nil {
				continue
			}
			if *l.v < 0 {
				return nil, errInvalidParam("event_context limits must not be negative")
			}
			*l.out = min(*l.v, maxSearchContext)
		}
	}
	if g := c.Groupings; g != nil {
		for _, gb := range g.GroupBy {
			if gb.Key != "room_id" && gb.Key != "sender" {
				return nil, errInvalidParam("group_by keys are room_id and sender")
			}
			sc.groupBy = append(sc.groupBy, gb.Key)
		}
	}
	if nextBatch != "" {
		kind, n, ok := strings.Cut(nextBatch, ":")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || v < 0 || (kind == "rank") != sc.byRank || (kind != "rank" && kind != "recent") {
			return nil, errInvalidParam("invalid next_batch for this order")
		}
		if sc.byRank {
			sc.cursorOffset = v
		} else {
			sc.cursorPos = v
		}
	}
	return sc, nil
}

// searchRooms is the caller's access to the rooms searched: those they are
// in or left (not forgotten), as the filter allows.
func (s *Server) searchRooms(ctx context.Context, userID string, f *roomEventFilter) (map[persistence.RoomNID]*roomAccess, []persistence.RoomNID, error) {
	ms, err := s.store.MembershipsForUser(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	access := map[persistence.RoomNID]*roomAccess{}
	var nids []persistence.RoomNID
	for _, m := range ms {
		if m.Forgotten || !slices.Contains([]string{"join", "leave", "ban"}, m.Membership) || !roomAllowed(f.Rooms, f.NotRooms, m.RoomID) {
			continue
		}
		a, err := s.accessFor(ctx, m.RoomID, userID)
		if err != nil {
			return nil, nil, err
		}
		access[a.nid] = a
		nids = append(nids, a.nid)
	}
	return access, nids, nil
}

func (s *Server) searchRoomEvents(r *http.Request, c *roomEventsCriteria) (map[string]any, error) {
	ctx := r.Context()
	sc, err := checkSearchCriteria(c, r.URL.Query().Get("next_batch"))
	if err != nil {
		return nil, err
	}
	access, rooms, err := s.searchRooms(ctx, callerFrom(ctx).UserID, sc.f)
	if err != nil {
		return nil, err
	}
	bound, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	checkers := map[persistence.RoomNID]*visibilityChecker{}
	q := persistence.SearchQuery{
		Term: *c.SearchTerm, Keys: c.Keys, Rooms: rooms, To: bound, ByRank: sc.byRank,
		Before: persistence.StreamPos(sc.cursorPos), Offset: sc.cursorOffset,
	}
	var hits []searchHit
	var found *persistence.SearchResults
	more := false
	for scanned := 0; sc.limit > 0; {
		q.Limit = max(sc.limit-len(hits), 20)
		res, err := s.store.SearchEvents(ctx, q)
		if err != nil {
			return nil, err
		}
		if found == nil {
			found = res
		}
		more = len(res.Hits) == q.Limit
		for i := range res.Hits {
			if len(hits) == sc.limit {
				more = true
				break
			}
			h := &res.Hits[i]
			q.Before, q.Offset = h.Event.StreamPos, q.Offset+1
			scanned++
			a := access[h.Event.RoomNID]
			if a == nil || h.Event.StreamPos > a.bound || !sc.f.allowsEvent(&h.Event) {
				continue
			}
			vc := checkers[a.nid]
			if vc == nil {
				vc = s.newVisibilityChecker(a)
				checkers[a.nid] = vc
			}
			ok, err := vc.canSee(ctx, &h.Event)
			if err != nil {
				return nil, err
			}
			if ok {
				hits = append(hits, searchHit{ev: h.Event, rank: h.Rank, a: a, vc: vc})
			}
		}
		if !more || len(hits) == sc.limit || scanned >= maxSearchScan {
			break
		}
	}
	out := map[string]any{"count": 0, "highlights": []string{}}
	if found != nil {
		out["count"], out["highlights"] = found.Count, found.Words
	} else if words := persistence.SearchWords(*c.SearchTerm); len(words) > 0 {
		out["highlights"] = words
	}
	results, err := s.searchResults(ctx, sc, hits)
	if err != nil {
		return nil, err
	}
	out["results"] = results
	if more {
		if sc.byRank {
			out["next_batch"] = "rank:" + strconv.Itoa(q.Offset)
		} else {
			out["next_batch"] = "recent:" + strconv.FormatInt(int64(q.Before), 10)
		}
	}
	if len(sc.groupBy) > 0 {
		out["groups"] = searchGroups(sc.groupBy, hits)
	}
	if c.IncludeState {
		state := map[string]any{}
		for _, h := range hits {
			if _, done := state[h.a.roomID]; done {
				continue
			}
			evs, err := s.stateFor(ctx, h.a)
			if err != nil {
				return nil, err
			}
			if state[h.a.roomID], err = toClientEvents(evs, true); err != nil {
				return nil, err
			}
		}
		out["state"] = state
	}
	return out, nil
}

// searchResults formats the hits, with their context when asked.
func (s *Server) searchResults(ctx context.Context, sc *searchCriteria, hits []searchHit) ([]map[string]any, error) {
	results := make([]map[string]any, 0, len(hits))
	for _, h := range hits {
		evs, err := s.formatTimeline(ctx, h.a, []persistence.StoredEvent{h.ev})
		if err != nil {
			return nil, err
		}
		res := map[string]any{"rank": h.rank, "result": evs[0]}
		if sc.EventContext != nil {
			if res["context"], err = s.searchContext(ctx, sc, &h); err != nil {
				return nil, err
			}
		}
		results = append(results, res)
	}
	return results, nil
}

// searchContext is a result's context: the events around it the caller may
// see and the filter allows, as /context finds them.
func (s *Server) searchContext(ctx context.Context, sc *searchCriteria, h *searchHit) (map[string]any, error) {
	before, start, err := s.scanRoom(ctx, h.a, h.vc, sc.f, h.ev.StreamPos-1, 0, sc.before, false)
	if err != nil {
		return nil, err
	}
	after, end, err := s.scanRoom(ctx, h.a, h.vc, sc.f, h.ev.StreamPos, h.a.bound, sc.after, true)
	if err != nil {
		return nil, err
	}
	evBefore, err := s.formatTimeline(ctx, h.a, before)
	if err != nil {
		return nil, err
	}
	evAfter, err := s.formatTimeline(ctx, h.a, after)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"start": streamToken(start), "end": streamToken(end),
		"events_before": evBefore, "events_after": evAfter,
	}
	if !sc.EventContext.IncludeProfile {
		return out, nil
	}
	// The senders' profiles as the room knew them at the result.
	profiles := map[string]any{}
	for _, ev := range slices.Concat(before, []persistence.StoredEvent{h.ev}, after) {
		if _, done := profiles[ev.Sender]; done {
			continue
		}
		me, err := s.stateEventAt(ctx, h.ev.StateBefore, spec.MRoomMember, ev.Sender)
		if err != nil {
			return nil, err
		}
		p := map[string]string{}
		if name := contentField(me, "displayname"); name != "" {
			p["displayname"] = name
		}
		if avatar := contentField(me, "avatar_url"); avatar != "" {
			p["avatar_url"] = avatar
		}
		profiles[ev.Sender] = p
	}
	out["profile_info"] = profiles
	return out, nil
}

// searchGroups partitions the page's results by room or sender; groups are
// ordered by their first result. No group has a next_batch of its own.
func searchGroups(keys []string, hits []searchHit) map[string]any {
	groups := map[string]any{}
	for _, key := range keys {
		byValue := map[string]map[string]any{}
		for _, h := range hits {
			v := h.ev.RoomID
			if key == "sender" {
				v = h.ev.Sender
			}
			g := byValue[v]
			if g == nil {
				g = map[string]any{"order": len(byValue) + 1, "results": []string{}}
				byValue[v] = g
			}
			g["results"] = append(g["results"].([]string), h.ev.EventID)
		}
		groups[key] = byValue
	}
	return groups
}
