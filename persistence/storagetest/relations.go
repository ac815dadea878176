package storagetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func relatesTo(relType, parent string) string {
	return fmt.Sprintf(`{"body":"x","m.relates_to":{"rel_type":%q,"event_id":%q}}`, relType, parent)
}

func testRelations(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!relations:x")
	r.create(t, "@alice:x")
	r.mustCommit(t, r.message("@alice:x", "root"))
	root := r.events[len(r.events)-1]
	r.mustCommit(t,
		r.event("m.reaction", nil, "@alice:x", relatesTo("m.annotation", root)),
		r.event("m.room.message", nil, "@alice:x", relatesTo("m.replace", root)),
		r.event("m.reaction", nil, "@bob:x", relatesTo("m.annotation", root)),
		// Not relations: a reply alone, a malformed relation, another parent.
		r.event("m.room.message", nil, "@alice:x", `{"m.relates_to":{"m.in_reply_to":{"event_id":"`+root+`"}}}`),
		r.event("m.room.message", nil, "@alice:x", `{"m.relates_to":{"rel_type":5,"event_id":"`+root+`"}}`),
		r.event("m.room.message", nil, "@alice:x", `{"m.relates_to":"nope"}`),
		r.event("m.reaction", nil, "@alice:x", relatesTo("m.annotation", "$elsewhere")),
	)
	n := len(r.events)
	react1, edit, react2 := r.events[n-7], r.events[n-6], r.events[n-5]
	top := persistence.StreamPos(1 << 40)

	all, err := s.Relations(ctx, r.nid, root, "", "", 0, top, 100, true)
	noErr(t, "Relations", err)
	if got, want := eventIDs(all), []string{react1, edit, react2}; !slices.Equal(got, want) {
		t.Fatalf("Relations forward = %v, want %v", got, want)
	}
	for i := range all {
		r.checkStored(t, &all[i])
	}
	back, err := s.Relations(ctx, r.nid, root, "", "", 0, top, 2, false)
	noErr(t, "Relations", err)
	if got, want := eventIDs(back), []string{react2, edit}; !slices.Equal(got, want) {
		t.Fatalf("Relations backward, limit 2 = %v, want %v", got, want)
	}
	// The next page starts below the last one returned.
	rest, err := s.Relations(ctx, r.nid, root, "", "", 0, r.pos[edit]-1, 2, false)
	noErr(t, "Relations", err)
	if got, want := eventIDs(rest), []string{react1}; !slices.Equal(got, want) {
		t.Fatalf("Relations second page = %v, want %v", got, want)
	}
	ann, err := s.Relations(ctx, r.nid, root, "m.annotation", "m.reaction", 0, top, 100, true)
	noErr(t, "Relations", err)
	if got, want := eventIDs(ann), []string{react1, react2}; !slices.Equal(got, want) {
		t.Fatalf("annotations = %v, want %v", got, want)
	}
	none, err := s.Relations(ctx, r.nid, root, "m.annotation", "m.room.message", 0, top, 100, true)
	noErr(t, "Relations", err)
	if len(none) != 0 {
		t.Fatalf("annotations of type m.room.message = %v, want none", eventIDs(none))
	}
	// Another room's parent ID finds nothing here.
	other, err := s.Relations(ctx, r.nid+1000, root, "", "", 0, top, 100, true)
	noErr(t, "Relations", err)
	if len(other) != 0 {
		t.Fatalf("relations in another room = %v", eventIDs(other))
	}

	// A redacted child is no longer a relation.
	red := r.event("m.room.redaction", nil, "@alice:x", `{}`)
	red.Redacts = react1
	r.mustCommit(t, red)
	after, err := s.Relations(ctx, r.nid, root, "m.annotation", "", 0, top, 100, true)
	noErr(t, "Relations", err)
	if got, want := eventIDs(after), []string{react2}; !slices.Equal(got, want) {
		t.Fatalf("annotations after a redaction = %v, want %v", got, want)
	}
}

func testThreads(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!threads:x")
	r.create(t, "@alice:x")
	r.mustCommit(t, r.message("@alice:x", "first root"), r.message("@bob:x", "second root"))
	rootA, rootB := r.events[len(r.events)-2], r.events[len(r.events)-1]
	r.mustCommit(t,
		r.event("m.room.message", nil, "@carol:x", relatesTo("m.thread", rootA)),
		r.event("m.room.message", nil, "@bob:x", relatesTo("m.thread", rootB)),
		r.event("m.room.message", nil, "@carol:x", relatesTo("m.thread", rootA)),
		r.event("m.room.message", nil, "@carol:x", relatesTo("m.thread", "$unknown-root")),
	)
	n := len(r.events)
	lastB, lastA := r.events[n-3], r.events[n-2]
	top := persistence.StreamPos(1 << 40)

	ths, err := s.Threads(ctx, r.nid, "", top, top, 10)
	noErr(t, "Threads", err)
	if len(ths) != 2 || ths[0].Root.EventID != rootA || ths[1].Root.EventID != rootB {
		t.Fatalf("Threads = %+v, want %s then %s (roots not stored are left out)", ths, rootA, rootB)
	}
	if ths[0].Count != 2 || ths[0].LatestEventID != lastA || ths[0].Latest != r.pos[lastA] {
		t.Fatalf("thread A: count %d latest %s@%d, want 2 and %s@%d", ths[0].Count, ths[0].LatestEventID, ths[0].Latest, lastA, r.pos[lastA])
	}
	if ths[1].Count != 1 || ths[1].LatestEventID != lastB {
		t.Fatalf("thread B: count %d latest %s, want 1 and %s", ths[1].Count, ths[1].LatestEventID, lastB)
	}
	r.checkStored(t, &ths[0].Root)
	// Paging: the next page holds threads whose latest reply is older.
	page2, err := s.Threads(ctx, r.nid, "", ths[0].Latest, top, 10)
	noErr(t, "Threads", err)
	if len(page2) != 1 || page2[0].Root.EventID != rootB {
		t.Fatalf("Threads page 2 = %+v, want only %s", page2, rootB)
	}
	// A bound hides the later replies.
	bounded, err := s.Threads(ctx, r.nid, "", top, r.pos[lastB], 10)
	noErr(t, "Threads", err)
	if len(bounded) != 2 || bounded[0].Root.EventID != rootB || bounded[1].Count != 1 {
		t.Fatalf("Threads bounded at %s = %+v", lastB, bounded)
	}
	for _, tc := range []struct {
		who  string
		want []string
	}{
		{"@alice:x", []string{rootA}}, // started A
		{"@bob:x", []string{rootB}},   // started and replied to B
		{"@carol:x", []string{rootA}}, // replied to A (the unknown root is left out)
		{"@nobody:x", nil},
	} {
		got, err := s.Threads(ctx, r.nid, tc.who, top, top, 10)
		noErr(t, "Threads", err)
		var ids []string
		for _, th := range got {
			ids = append(ids, th.Root.EventID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Fatalf("threads %s participated in = %v, want %v", tc.who, ids, tc.want)
		}
	}
}

func testBundledRelations(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!bundles:x")
	r.create(t, "@alice:x")
	r.mustCommit(t, r.message("@alice:x", "edited"), r.message("@bob:x", "thread root"), r.message("@bob:x", "plain"))
	n := len(r.events)
	edited, root, plain := r.events[n-3], r.events[n-2], r.events[n-1]
	r.mustCommit(t,
		r.event("m.room.message", nil, "@alice:x", relatesTo("m.replace", edited)),
		r.event("m.room.message", nil, "@carol:x", relatesTo("m.thread", root)),
		r.event("m.room.message", nil, "@alice:x", relatesTo("m.reference", edited)),
		r.event("m.reaction", nil, "@bob:x", relatesTo("m.annotation", edited)), // not bundled
		r.event("m.room.message", nil, "@bob:x", relatesTo("m.thread", root)),
		r.event("m.room.message", nil, "@carol:x", relatesTo("m.thread", root)),
	)
	n = len(r.events)
	edit, reply1, ref, reply2, reply3 := r.events[n-6], r.events[n-5], r.events[n-4], r.events[n-2], r.events[n-1]
	nid := func(id string) persistence.EventNID {
		ev, err := s.EventByID(ctx, id)
		noErr(t, "EventByID", err)
		return ev.NID
	}
	parents := []persistence.EventNID{nid(edited), nid(root), nid(plain)}
	top := persistence.StreamPos(1 << 40)

	children, threads, err := s.BundledRelations(ctx, parents, "@bob:x", top)
	noErr(t, "BundledRelations", err)
	var got []string
	for _, c := range children {
		got = append(got, fmt.Sprintf("%s<-%s:%d", c.RelType, c.Event.EventID, c.Parent))
		r.checkStored(t, &c.Event)
	}
	want := []string{fmt.Sprintf("m.replace<-%s:%d", edit, parents[0]), fmt.Sprintf("m.reference<-%s:%d", ref, parents[0])}
	if !slices.Equal(got, want) {
		t.Fatalf("bundled children = %v, want %v", got, want)
	}
	if len(threads) != 1 || threads[0].Root != parents[1] || threads[0].Count != 3 || threads[0].Latest.EventID != reply3 || !threads[0].Participated {
		t.Fatalf("thread summaries = %+v, want root %d with 3 replies, latest %s, bob participated", threads, parents[1], reply3)
	}
	r.checkStored(t, &threads[0].Latest)
	_, threads, err = s.BundledRelations(ctx, parents, "@dave:x", top)
	noErr(t, "BundledRelations", err)
	if len(threads) != 1 || threads[0].Participated {
		t.Fatalf("dave participated in %+v", threads)
	}

	// The bound hides later relations; redacted children are left out.
	children, threads, err = s.BundledRelations(ctx, parents, "@bob:x", r.pos[reply1])
	noErr(t, "BundledRelations", err)
	if len(children) != 1 || len(threads) != 1 || threads[0].Count != 1 || threads[0].Latest.EventID != reply1 || threads[0].Participated {
		t.Fatalf("bounded at the first reply: children %d, threads %+v", len(children), threads)
	}
	red := r.event("m.room.redaction", nil, "@alice:x", `{}`)
	red.Redacts = reply3
	red2 := r.event("m.room.redaction", nil, "@alice:x", `{}`)
	red2.Redacts = edit
	r.mustCommit(t, red, red2)
	children, threads, err = s.BundledRelations(ctx, parents, "@bob:x", top)
	noErr(t, "BundledRelations", err)
	if len(children) != 1 || children[0].Event.EventID != ref {
		t.Fatalf("children after redacting the edit = %d", len(children))
	}
	if len(threads) != 1 || threads[0].Count != 2 || threads[0].Latest.EventID != reply2 {
		t.Fatalf("thread after redacting the latest reply = %+v", threads)
	}
	none, threads, err := s.BundledRelations(ctx, nil, "@bob:x", top)
	noErr(t, "BundledRelations", err)
	if len(none) != 0 || len(threads) != 0 {
		t.Fatal("BundledRelations of no parents found some")
	}
}

func testEventsNearTimestamp(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!timestamps:x")
	r.create(t, "@alice:x")
	r.mustCommit(t, r.message("@alice:x", "a"), r.message("@alice:x", "b"), r.message("@alice:x", "c"))
	evs := r.events
	ts := func(id string) int64 {
		ev, err := s.EventByID(ctx, id)
		noErr(t, "EventByID", err)
		return ev.OriginServerTS
	}
	mid := evs[len(evs)-2]
	top := persistence.StreamPos(1 << 40)
	for _, tc := range []struct {
		ts      int64
		forward bool
		want    string
	}{
		{ts(mid), true, mid},
		{ts(mid), false, mid},
		{ts(mid) - 1, false, evs[len(evs)-3]},
		{ts(mid) + 1, true, evs[len(evs)-1]},
		{ts(evs[0]) - 1, false, ""},
		{ts(evs[len(evs)-1]) + 1, true, ""},
	} {
		got, err := s.EventsNearTimestamp(ctx, r.nid, tc.ts, tc.forward, top, 1)
		noErr(t, "EventsNearTimestamp", err)
		var id string
		if len(got) > 0 {
			id = got[0].EventID
			r.checkStored(t, &got[0])
		}
		if id != tc.want {
			t.Fatalf("EventsNearTimestamp(%d, forward %v) = %q, want %q", tc.ts, tc.forward, id, tc.want)
		}
	}
	// The bound hides later events.
	got, err := s.EventsNearTimestamp(ctx, r.nid, ts(mid), true, r.pos[evs[len(evs)-3]], 5)
	noErr(t, "EventsNearTimestamp", err)
	if len(got) != 0 {
		t.Fatalf("EventsNearTimestamp past the bound = %v", eventIDs(got))
	}
	// An outlier is not in the timeline: never near any time.
	outlier := r.message("@bob:remote", "fetched")
	outlier.Outlier, outlier.OriginServerTS = true, ts(evs[len(evs)-1])+1000
	r.mustCommit(t, outlier)
	for _, forward := range []bool{true, false} {
		got, err := s.EventsNearTimestamp(ctx, r.nid, outlier.OriginServerTS, forward, top, 5)
		noErr(t, "EventsNearTimestamp", err)
		if slices.Contains(eventIDs(got), outlier.EventID) {
			t.Fatalf("EventsNearTimestamp(forward %v) found the outlier: %v", forward, eventIDs(got))
		}
	}
}

// CheckRelationsBackfill is what the backends' migration tests assert
// after migrating a database whose events predate the relations
// projection (room NID 1, events $root, $thread (m.thread), $reply (a
// reply only), two malformed relations and $nul (an annotation whose body
// holds \u0000)): only the well-formed relations are found.
func CheckRelationsBackfill(t *testing.T, s persistence.Store) {
	t.Helper()
	ctx := context.Background()
	evs, err := s.Relations(ctx, 1, "$root", "", "", 0, 1<<40, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.EventID)
	}
	if want := []string{"$thread", "$nul"}; !slices.Equal(ids, want) {
		t.Fatalf("relations after the migration = %v, want %v", ids, want)
	}
	ths, err := s.Threads(ctx, 1, "", 1<<40, 1<<40, 10)
	if err != nil || len(ths) != 1 || ths[0].Root.EventID != "$root" || ths[0].Count != 1 {
		t.Fatalf("threads after the migration = %+v, %v", ths, err)
	}
}
