package storagetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// search runs a query and returns the IDs of the events found, checking
// each against what was committed.
func search(t *testing.T, s persistence.Store, q persistence.SearchQuery, rooms ...*room) ([]string, *persistence.SearchResults) {
	t.Helper()
	res, err := s.SearchEvents(context.Background(), q)
	noErr(t, "SearchEvents", err)
	var ids []string
	for i := range res.Hits {
		ev := &res.Hits[i].Event
		for _, r := range rooms {
			if r.nid == ev.RoomNID {
				r.checkStored(t, ev)
			}
		}
		ids = append(ids, ev.EventID)
	}
	return ids, res
}

func testSearch(t *testing.T, s persistence.Store) {
	r, other := newRoom(s, "!search:x"), newRoom(s, "!elsewhere:x")
	r.create(t, "@alice:x")
	other.create(t, "@bob:x")
	r.mustCommit(t,
		r.message("@alice:x", "The Martians have landed"),
		r.message("@bob:x", "no martians here, only men"),
		r.message("@alice:x", "Martians and men, martians everywhere: martians!"),
		r.event("m.room.message", nil, "@alice:x", `{"msgtype":"m.text","body":5}`),
		r.event("m.room.message", nil, "@alice:x", `{"msgtype":"m.text","body":"Grüße aus Köln"}`),
		r.event("m.room.name", ptr(""), "@alice:x", `{"name":"Alien embassy"}`),
		r.event("m.room.topic", ptr(""), "@alice:x", `{"topic":"talk about martians","m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>hovercraft</b>"},{"body":"zeppelins, too"}]}}`),
		r.event("m.room.topic", ptr("not-the-topic"), "@alice:x", `{"topic":"martians"}`),
		r.event("m.custom", nil, "@alice:x", `{"body":"martians"}`),
	)
	other.mustCommit(t, other.message("@bob:x", "martians in the other room"))
	ev := func(i int) string { return r.events[4+i] } // the batch above, from 0
	all := persistence.SearchQuery{Term: "MARTIANS", Rooms: []persistence.RoomNID{r.nid}, To: 1 << 40, Limit: 10}

	// Case folds; only the three keys of the right events count; the
	// other room is not searched; most recent first.
	got, res := search(t, s, all, r)
	if want := []string{ev(6), ev(2), ev(1), ev(0)}; !slices.Equal(got, want) {
		t.Fatalf("recent search = %v, want %v", got, want)
	}
	if res.Count != 4 || !slices.Equal(res.Words, []string{"martians"}) {
		t.Fatalf("count %d words %v, want 4 [martians]", res.Count, res.Words)
	}
	// Every word must occur.
	q := all
	q.Term = "men, martians"
	if got, _ := search(t, s, q, r); !slices.Equal(got, []string{ev(2), ev(1)}) {
		t.Fatalf("two words = %v, want %v", got, []string{ev(2), ev(1)})
	}
	q.Term = "alien Embassy"
	if got, _ := search(t, s, q, r); !slices.Equal(got, []string{ev(5)}) {
		t.Fatalf("the name = %v, want %v", got, []string{ev(5)})
	}
	// A topic is found by its text/plain m.topic too.
	q.Term = "zeppelins"
	if got, _ := search(t, s, q, r); !slices.Equal(got, []string{ev(6)}) {
		t.Fatalf("the m.topic text = %v, want %v", got, []string{ev(6)})
	}
	q.Term = "hovercraft"
	if got, _ := search(t, s, q, r); len(got) != 0 {
		t.Fatalf("the m.topic HTML = %v, want nothing", got)
	}
	q.Term = "grüße köln"
	if got, _ := search(t, s, q, r); !slices.Equal(got, []string{ev(4)}) {
		t.Fatalf("non-ASCII words = %v, want %v", got, []string{ev(4)})
	}
	for _, term := range []string{"", "  !?* ", "venusians", `"unbalanced AND (`, "martians NEAR/2 -men *"} {
		q.Term = term
		got, res := search(t, s, q, r)
		if term != "martians NEAR/2 -men *" && (len(got) != 0 || res.Count != 0) {
			t.Fatalf("search for %q = %v (count %d), want nothing", term, got, res.Count)
		}
	}
	// Keys narrow to bodies, names or topics.
	for key, want := range map[string][]string{
		persistence.SearchKeyBody: {ev(2), ev(1), ev(0)}, persistence.SearchKeyName: nil, persistence.SearchKeyTopic: {ev(6)},
	} {
		q := all
		q.Keys = []string{key}
		if got, _ := search(t, s, q, r); !slices.Equal(got, want) {
			t.Fatalf("keys %s = %v, want %v", key, got, want)
		}
	}
	// Both rooms; the bound hides later events.
	q = all
	q.Rooms = []persistence.RoomNID{r.nid, other.nid}
	if got, _ := search(t, s, q, r, other); len(got) != 5 || got[0] != other.events[len(other.events)-1] {
		t.Fatalf("both rooms = %v", got)
	}
	q.To = r.pos[ev(1)]
	if got, res := search(t, s, q, r); !slices.Equal(got, []string{ev(1), ev(0)}) || res.Count != 2 {
		t.Fatalf("bounded search = %v (count %d), want %v", got, res.Count, []string{ev(1), ev(0)})
	}

	// Recent order pages on with Before.
	q = all
	q.Limit = 3
	page1, _ := search(t, s, q, r)
	q.Before = r.pos[page1[len(page1)-1]]
	page2, res := search(t, s, q, r)
	if !slices.Equal(append(page1, page2...), []string{ev(6), ev(2), ev(1), ev(0)}) || res.Count != 4 {
		t.Fatalf("recent pages = %v then %v (count %d)", page1, page2, res.Count)
	}

	// Rank order: three occurrences first; pages on with Offset.
	q = all
	q.Keys, q.ByRank = []string{persistence.SearchKeyBody}, true
	ranked, res := search(t, s, q, r)
	if len(ranked) != 3 || ranked[0] != ev(2) || res.Hits[0].Rank <= res.Hits[2].Rank {
		t.Fatalf("ranked = %v with ranks %v, want %s first and ranks descending", ranked, res.Hits, ev(2))
	}
	q.Offset, q.Limit = 1, 1
	if got, _ := search(t, s, q, r); !slices.Equal(got, ranked[1:2]) {
		t.Fatalf("ranked offset 1 = %v, want %v", got, ranked[1:2])
	}

	// A redaction takes the text out of the index.
	redaction := r.event("m.room.redaction", nil, "@alice:x", `{}`)
	redaction.Redacts = ev(2)
	r.mustCommit(t, redaction, r.message("@alice:x", "martians again"))
	got, res = search(t, s, all, r)
	if want := []string{r.events[len(r.events)-1], ev(6), ev(1), ev(0)}; !slices.Equal(got, want) || res.Count != 4 {
		t.Fatalf("after a redaction = %v (count %d), want %v", got, res.Count, want)
	}
	if got, _ := search(t, s, persistence.SearchQuery{Term: "martians", To: 1 << 40, Limit: 10}); len(got) != 0 {
		t.Fatalf("no rooms = %v, want nothing", got)
	}
}

// RunSearchAcrossOpens checks that search finds what every store opened
// on the same database wrote and redacted, whichever of them searches.
// opens open the database in turn (each store is closed before the next
// opens; the last is left open, and closed when t ends).
func RunSearchAcrossOpens(t *testing.T, opens ...func() persistence.Store) {
	r := newRoom(nil, "!reopened:x")
	var found []string
	for i, open := range opens {
		s := open()
		r.s = s
		if i == 0 {
			r.create(t, "@alice:x")
		} else {
			head, err := s.ClaimRoom(bg, r.id)
			noErr(t, "ClaimRoom", err)
			r.epoch = head.Epoch
		}
		r.mustCommit(t, r.message("@alice:x", fmt.Sprintf("zebra number %d", i)), r.message("@alice:x", fmt.Sprintf("zebra doomed %d", i)))
		found = append(found, r.events[len(r.events)-2])
		doomed := r.events[len(r.events)-1]
		redaction := r.event("m.room.redaction", nil, "@alice:x", `{}`)
		redaction.Redacts = doomed
		r.mustCommit(t, redaction)
		got, _ := search(t, s, persistence.SearchQuery{Term: "zebra", Rooms: []persistence.RoomNID{r.nid}, To: 1 << 40, ByRank: true, Limit: 100}, r)
		slices.Sort(got)
		want := slices.Sorted(slices.Values(found))
		if !slices.Equal(got, want) {
			t.Fatalf("store %d of %d finds %v, want %v", i+1, len(opens), got, want)
		}
		if i < len(opens)-1 {
			noErr(t, "Close", s.Close())
		}
	}
}

// CheckSearchBackfill is what the backends' migration tests assert after
// migrating a database whose events predate the search index (room NID 1,
// state key NID 1 is "", events $body "Martians landed", $name (an
// m.room.name "Alien embassy"), $topic (an m.room.topic "martians
// topic"), $redacted (a message "martians gone" that $redaction redacts),
// $number (a body that is a number), $custom (m.custom with a body
// "martians") and $nul (a body "martians\u0000nul")).
func CheckSearchBackfill(t *testing.T, s persistence.Store) {
	t.Helper()
	res, err := s.SearchEvents(context.Background(), persistence.SearchQuery{Term: "martians", Rooms: []persistence.RoomNID{1}, To: 1 << 40, Limit: 10})
	noErr(t, "SearchEvents", err)
	var ids []string
	for _, h := range res.Hits {
		ids = append(ids, h.Event.EventID)
	}
	slices.Sort(ids)
	if want := []string{"$body", "$nul", "$topic"}; !slices.Equal(ids, want) {
		t.Fatalf("search after the migration = %v, want %v", ids, want)
	}
	res, err = s.SearchEvents(context.Background(), persistence.SearchQuery{Term: "embassy", Rooms: []persistence.RoomNID{1}, To: 1 << 40, Limit: 10})
	noErr(t, "SearchEvents", err)
	if len(res.Hits) != 1 || res.Hits[0].Event.EventID != "$name" {
		t.Fatalf("search for the name after the migration = %+v", res.Hits)
	}
}

// SearchBackfillFixture is the rows CheckSearchBackfill expects, written
// to a database at schema version 10 (plain SQL both backends accept).
var SearchBackfillFixture = []string{
	"INSERT INTO rooms (room_nid, room_id, room_version) VALUES (1, '!r:test', '10')",
	"INSERT INTO event_types (event_type_nid, event_type) VALUES (100000, 'm.custom')",
	searchFixtureEvent(1, "$body", 13, 0, `{"content":{"body":"Martians landed"}}`),
	searchFixtureEvent(2, "$name", 6, 1, `{"content":{"name":"Alien embassy"}}`),
	searchFixtureEvent(3, "$topic", 7, 1, `{"content":{"topic":"martians topic"}}`),
	searchFixtureEvent(4, "$redacted", 13, 0, `{"content":{"body":"martians gone"}}`),
	searchFixtureEvent(5, "$redaction", 14, 0, `{"content":{},"redacts":"$redacted"}`),
	searchFixtureEvent(6, "$number", 13, 0, `{"content":{"body":5}}`),
	searchFixtureEvent(7, "$custom", 100000, 0, `{"content":{"body":"martians"}}`),
	searchFixtureEvent(8, "$nul", 13, 0, `{"content":{"body":"martians\u0000nul"}}`),
	"INSERT INTO redactions (redacts_nid, redaction_nid) VALUES (4, 5)",
}

func searchFixtureEvent(nid int, id string, typeNID, stateKeyNID int, js string) string {
	return fmt.Sprintf(`INSERT INTO events (event_nid, room_nid, event_id, event_type_nid, state_key_nid, depth, stream_pos,
	origin_server_ts, sender, state_before_nid, event_json) VALUES (%d, 1, '%s', %d, %d, %d, %d, 0, '@u:test', 0, '%s')`,
		nid, id, typeNID, stateKeyNID, nid, nid, js)
}
