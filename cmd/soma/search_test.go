package main

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// searchPage is the part of a /search response the tests read.
type searchPage struct {
	SearchCategories struct {
		RoomEvents struct {
			Count      int      `json:"count"`
			Highlights []string `json:"highlights"`
			NextBatch  string   `json:"next_batch"`
			Results    []struct {
				Rank    float64 `json:"rank"`
				Result  event   `json:"result"`
				Context *struct {
					Start        string                       `json:"start"`
					End          string                       `json:"end"`
					EventsBefore []event                      `json:"events_before"`
					EventsAfter  []event                      `json:"events_after"`
					ProfileInfo  map[string]map[string]string `json:"profile_info"`
				} `json:"context"`
			} `json:"results"`
			Groups map[string]map[string]struct {
				Order   int      `json:"order"`
				Results []string `json:"results"`
			} `json:"groups"`
			State map[string][]event `json:"state"`
		} `json:"room_events"`
	} `json:"search_categories"`
}

func (p searchPage) ids() []string {
	var ids []string
	for _, r := range p.SearchCategories.RoomEvents.Results {
		ids = append(ids, r.Result.EventID)
	}
	return ids
}

func (c *client) search(criteria map[string]any, nextBatch string) searchPage {
	c.t.Helper()
	path := "/_matrix/client/v3/search"
	if nextBatch != "" {
		path += "?next_batch=" + nextBatch
	}
	var p searchPage
	c.must("POST", path, map[string]any{"search_categories": map[string]any{"room_events": criteria}}, &p)
	return p
}

// TestSearch: a member finds messages of the rooms they are in by word,
// with context and profiles, grouped, in pages by recency and by rank;
// never those of rooms they are not in, nor redacted ones, nor those sent
// after they left.
func TestSearch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob, carol := srv.register("alice"), srv.register("bob"), srv.register("carol")
		var shared, private struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat", "name": "Foxes"}, &shared)
		carol.must("POST", "/_matrix/client/v3/createRoom", map[string]any{}, &private)
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(shared.RoomID), map[string]any{}, nil)

		first := alice.send(shared.RoomID, "t1", "The quick brown fox")
		lazy := bob.send(shared.RoomID, "t2", "a lazy dog sleeps")
		again := alice.send(shared.RoomID, "t3", "Fox again, fox!")
		secret := carol.send(private.RoomID, "t4", "a secret fox")

		// Recent first; carol's room is not bob's; the room's name
		// (m.room.name "Foxes") is not the word fox on every backend
		// (stemming), so keys narrow to bodies.
		p := bob.search(map[string]any{"search_term": "FOX", "order_by": "recent", "keys": []string{"content.body"}}, "")
		re := p.SearchCategories.RoomEvents
		if got, want := p.ids(), []string{again, first}; !slices.Equal(got, want) {
			t.Fatalf("bob's search for fox = %v, want %v", got, want)
		}
		if re.Count != 2 || !slices.Equal(re.Highlights, []string{"fox"}) || re.NextBatch != "" {
			t.Fatalf("count %d highlights %v next_batch %q, want 2 [fox] none", re.Count, re.Highlights, re.NextBatch)
		}
		if r := re.Results[0].Result; r.Content["body"] != "Fox again, fox!" || r.RoomID != shared.RoomID || r.Sender != alice.userID {
			t.Fatalf("result event = %+v", r)
		}
		if got := carol.search(map[string]any{"search_term": "fox", "keys": []string{"content.body"}}, "").ids(); !slices.Equal(got, []string{secret}) {
			t.Fatalf("carol's search = %v, want %v", got, []string{secret})
		}
		// Rank (the default) puts the message with the word twice first.
		p = bob.search(map[string]any{"search_term": "fox", "keys": []string{"content.body"}}, "")
		if got := p.ids(); len(got) != 2 || got[0] != again || p.SearchCategories.RoomEvents.Results[0].Rank <= p.SearchCategories.RoomEvents.Results[1].Rank {
			t.Fatalf("ranked search = %v %+v", got, p.SearchCategories.RoomEvents.Results)
		}

		// Context, profiles, groups and state.
		p = bob.search(map[string]any{
			"search_term": "quick", "include_state": true,
			"event_context": map[string]any{"before_limit": 1, "after_limit": 1, "include_profile": true},
			"groupings":     map[string]any{"group_by": []map[string]any{{"key": "room_id"}, {"key": "sender"}}},
		}, "")
		re = p.SearchCategories.RoomEvents
		if !slices.Equal(p.ids(), []string{first}) || re.Results[0].Context == nil {
			t.Fatalf("search for quick = %v, context %v", p.ids(), re.Results)
		}
		cx := re.Results[0].Context
		if len(cx.EventsAfter) != 1 || cx.EventsAfter[0].EventID != lazy || len(cx.EventsBefore) != 1 || cx.Start == "" || cx.End == "" {
			t.Fatalf("context = %+v, want %s after and one event before", cx, lazy)
		}
		if cx.ProfileInfo[alice.userID]["displayname"] != "alice" {
			t.Fatalf("profile_info = %v, want alice's display name", cx.ProfileInfo)
		}
		if g := re.Groups["room_id"][shared.RoomID]; !slices.Equal(g.Results, []string{first}) {
			t.Fatalf("room group = %+v", re.Groups)
		}
		if g := re.Groups["sender"][alice.userID]; !slices.Equal(g.Results, []string{first}) {
			t.Fatalf("sender group = %+v", re.Groups)
		}
		if len(re.State[shared.RoomID]) == 0 {
			t.Fatalf("state = %v, want the shared room's", re.State)
		}

		// A redacted message is not found.
		alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(shared.RoomID)+"/redact/"+pathEscape(again)+"/r1", map[string]any{}, nil)
		if got := bob.search(map[string]any{"search_term": "fox", "keys": []string{"content.body"}}, "").ids(); !slices.Equal(got, []string{first}) {
			t.Fatalf("after the redaction = %v, want %v", got, []string{first})
		}

		// Pages, by recency and by rank, cover every match once.
		var zebras []string
		for i := range 5 {
			zebras = append(zebras, alice.send(shared.RoomID, fmt.Sprintf("z%d", i), fmt.Sprintf("zebra number %d", i)))
		}
		for _, order := range []string{"recent", "rank"} {
			var seen []string
			next, pages := "", 0
			for {
				p := bob.search(map[string]any{"search_term": "zebra", "order_by": order, "filter": map[string]any{"limit": 2}}, next)
				if n := len(p.ids()); n > 2 || p.SearchCategories.RoomEvents.Count != 5 {
					t.Fatalf("%s page of %d, count %d", order, n, p.SearchCategories.RoomEvents.Count)
				}
				seen = append(seen, p.ids()...)
				pages++
				if next = p.SearchCategories.RoomEvents.NextBatch; next == "" || pages > 5 {
					break
				}
			}
			if order == "recent" && !slices.Equal(seen, []string{zebras[4], zebras[3], zebras[2], zebras[1], zebras[0]}) {
				t.Fatalf("recent pages = %v, want %v newest first", seen, zebras)
			}
			slices.Sort(seen)
			if want := slices.Sorted(slices.Values(zebras)); !slices.Equal(seen, want) {
				t.Fatalf("%s pages = %v, want each of %v once", order, seen, want)
			}
		}

		// History visibility "joined": what was said before bob joined
		// is not his to find.
		var guarded struct {
			RoomID string `json:"room_id"`
		}
		carol.must("POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset":        "public_chat",
			"initial_state": []map[string]any{{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}}},
		}, &guarded)
		carol.send(guarded.RoomID, "k1", "kiwi before bob")
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(guarded.RoomID), map[string]any{}, nil)
		kiwi := carol.send(guarded.RoomID, "k2", "kiwi after bob")
		if got := bob.search(map[string]any{"search_term": "kiwi"}, "").ids(); !slices.Equal(got, []string{kiwi}) {
			t.Fatalf("bob's search in a joined-visibility room = %v, want %v", got, []string{kiwi})
		}
		if got := carol.search(map[string]any{"search_term": "kiwi"}, "").ids(); len(got) != 2 {
			t.Fatalf("carol's search = %v, want both kiwis", got)
		}

		// A room left is searched up to the departure.
		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(shared.RoomID)+"/leave", map[string]any{}, nil)
		alice.send(shared.RoomID, "t5", "fox after bob left")
		if got := bob.search(map[string]any{"search_term": "fox", "keys": []string{"content.body"}}, "").ids(); !slices.Equal(got, []string{first}) {
			t.Fatalf("bob's search after leaving = %v, want %v", got, []string{first})
		}
	})
}

// TestSearchErrors: bad requests are Matrix errors.
func TestSearchErrors(t *testing.T) {
	srv := startServer(t, t.TempDir(), "SOMA_RATE_LIMITS_ENABLED=false")
	alice := srv.register("alice")
	var e struct {
		Errcode string `json:"errcode"`
	}
	if code := srv.anonymous().do("POST", "/_matrix/client/v3/search", map[string]any{}, &e); code != http.StatusUnauthorized || e.Errcode != "M_MISSING_TOKEN" {
		t.Fatalf("no token: %d %s", code, e.Errcode)
	}
	for _, tc := range []struct {
		body    any
		next    string
		errcode string
	}{
		{"{not json", "", "M_NOT_JSON"},
		{"[]", "", "M_BAD_JSON"},
		{map[string]any{}, "", "M_BAD_JSON"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{}}}, "", "M_BAD_JSON"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": 5}}}, "", "M_BAD_JSON"},
		{map[string]any{"search_categories": map[string]any{"messages": map[string]any{"search_term": "x"}}}, "", "M_INVALID_PARAM"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "order_by": "oldest"}}}, "", "M_INVALID_PARAM"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "keys": []string{"content.url"}}}}, "", "M_INVALID_PARAM"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "groupings": map[string]any{"group_by": []map[string]any{{"key": "type"}}}}}}, "", "M_INVALID_PARAM"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "order_by": "recent"}}}, "rank:2", "M_INVALID_PARAM"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x"}}}, "garbage", "M_INVALID_PARAM"},
	} {
		path := "/_matrix/client/v3/search"
		if tc.next != "" {
			path += "?next_batch=" + tc.next
		}
		e.Errcode = ""
		if code := alice.do("POST", path, tc.body, &e); code != http.StatusBadRequest || e.Errcode != tc.errcode {
			t.Fatalf("%v (next_batch %q): %d %s, want 400 %s", tc.body, tc.next, code, e.Errcode, tc.errcode)
		}
	}
	// No category: nothing to search, nothing found.
	var p map[string]map[string]any
	alice.must("POST", "/_matrix/client/v3/search", map[string]any{"search_categories": map[string]any{}}, &p)
	if len(p["search_categories"]) != 0 {
		t.Fatalf("no category = %v", p)
	}
}
