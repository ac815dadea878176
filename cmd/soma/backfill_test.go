package main

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
)

// messagesPage is one page of /messages.
type messagesPage struct {
	Start string  `json:"start"`
	End   string  `json:"end"`
	Chunk []event `json:"chunk"`
}

// pageBack pages /messages backwards from from until there is no end, and
// returns every event, newest first.
func (c *client) pageBack(roomID, from string, limit int) []event {
	c.t.Helper()
	var all []event
	for range 1000 {
		var page messagesPage
		c.must("GET", fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=%d&from=%s", pathEscape(roomID), limit, url.QueryEscape(from)), nil, &page)
		if len(page.Chunk) > limit {
			c.t.Fatalf("a page of %d events for limit %d", len(page.Chunk), limit)
		}
		all = append(all, page.Chunk...)
		if page.End == "" {
			return all
		}
		from = page.End
	}
	c.t.Fatal("/messages never ended")
	return nil
}

func eventIDs(evs []event) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.EventID
	}
	return ids
}

// A user on B who joined a room of A's scrolls back past the join: B
// fetches the room's history from A (backfill), and bob sees all of it,
// in order, down to the room's creation; scrolling back again is served
// from B's storage, A stopped. /context works on a backfilled event. In a
// room whose history is visible to members only from their join, nothing
// is fetched; and when no server answers, the pagination ends instead of
// failing. Each backend is B once.
func TestFederationBackfillShowsHistoryFromBeforeTheJoin(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	backends := backendsUnderTest()
	for i := range backends {
		other := backends[(i+1)%len(backends)]
		t.Run("B on "+backends[i].name, func(t *testing.T) {
			t.Parallel()
			testBackfill(t, startFedServer(t, other), startFedServer(t, backends[i]))
		})
	}
}

func testBackfill(t *testing.T, a, b *fedServer) {
	alice, bob := a.register("alice"), b.register("bob")
	createRoom := func(name string, initialState ...map[string]any) string {
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat", "name": name, "initial_state": initialState}, &created)
		return created.RoomID
	}
	roomID := createRoom("old times")
	for i := range 30 {
		alice.send(roomID, fmt.Sprintf("m%d", i), fmt.Sprintf("before bob %d", i))
	}
	membersOnly := createRoom("members only", map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}})
	unreachable := createRoom("unreachable")
	for i := range 3 {
		alice.send(membersOnly, fmt.Sprintf("j%d", i), "hidden")
		alice.send(unreachable, fmt.Sprintf("u%d", i), "out of reach")
	}
	for _, id := range []string{roomID, membersOnly, unreachable} {
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(id)+"?server_name="+string(a.name), map[string]any{}, nil)
	}

	// The room as A has it, newest first: bob's join, alice's messages,
	// the room's creation.
	want := eventIDs(alice.pageBack(roomID, "s999999999", 10))
	if len(want) < 35 {
		t.Fatalf("A's history has %d events", len(want))
	}

	rooms := bob.sync("", 0).Rooms.Join
	room := rooms[roomID]
	timeline := room.Timeline.Events
	if room.Timeline.PrevBatch == "" || len(timeline) == 0 {
		t.Fatalf("bob's sync of the room: %+v", room.Timeline)
	}
	check := func(pass string) []event {
		t.Helper()
		got := slices.Clone(timeline)
		slices.Reverse(got)
		older := bob.pageBack(roomID, room.Timeline.PrevBatch, 7)
		got = append(got, older...)
		if !slices.Equal(eventIDs(got), want) {
			t.Fatalf("%s: bob's history (sync timeline, then /messages backwards) is\n%v\nwant A's\n%v", pass, eventIDs(got), want)
		}
		var bodies []any
		for _, ev := range got {
			if ev.Type == "m.room.message" {
				bodies = append(bodies, ev.Content["body"])
			}
		}
		if len(bodies) != 30 || bodies[0] != "before bob 29" || bodies[29] != "before bob 0" {
			t.Fatalf("%s: bob sees the messages %v", pass, bodies)
		}
		if last := got[len(got)-1]; last.Type != "m.room.create" {
			t.Fatalf("%s: bob's history ends with %s, not the room's creation", pass, last.Type)
		}
		return older
	}
	older := check("from A")
	if hidden := bob.pageBack(membersOnly, rooms[membersOnly].Timeline.PrevBatch, 7); len(hidden) != 0 {
		t.Fatalf("bob sees %d events from before his join in a room visible to members from their join", len(hidden))
	}

	// Served from B's storage now.
	a.Stop()
	check("A stopped")
	// A filter applies to the history as to the timeline, and lazy
	// loading names the senders of the history's events.
	filter := url.QueryEscape(`{"types":["m.room.message"],"lazy_load_members":true}`)
	from, n, aliceNamed := room.Timeline.PrevBatch, 0, false
	for from != "" {
		var page struct {
			messagesPage
			State []event `json:"state"`
		}
		bob.must("GET", fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=4&filter=%s&from=%s", pathEscape(roomID), filter, url.QueryEscape(from)), nil, &page)
		for _, ev := range page.Chunk {
			if want := fmt.Sprintf("before bob %d", 29-n); ev.Type != "m.room.message" || ev.Content["body"] != want {
				t.Fatalf("filtered history: %s %v where %q was due", ev.Type, ev.Content, want)
			}
			n++
		}
		for _, ev := range page.State {
			aliceNamed = aliceNamed || (ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == alice.userID)
		}
		from = page.End
	}
	if n != 30 || !aliceNamed {
		t.Fatalf("filtered history: %d messages, alice's member event lazily loaded: %v", n, aliceNamed)
	}

	for _, ev := range bob.pageBack(unreachable, rooms[unreachable].Timeline.PrevBatch, 7) {
		if ev.Type == "m.room.message" {
			t.Fatalf("bob sees %v of a room whose history no server could give", ev.Content)
		}
	}

	var ctxRes struct {
		Event        event   `json:"event"`
		EventsBefore []event `json:"events_before"`
		Start        string  `json:"start"`
	}
	target := older[len(older)/2]
	bob.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/context/"+pathEscape(target.EventID)+"?limit=4", nil, &ctxRes)
	if ctxRes.Event.EventID != target.EventID || len(ctxRes.EventsBefore) != 2 || ctxRes.Start == "" {
		t.Fatalf("context of a backfilled event: %+v", ctxRes)
	}
	i := slices.Index(want, target.EventID)
	if got := eventIDs(ctxRes.EventsBefore); !slices.Equal(got, want[i+1:i+3]) {
		t.Fatalf("context of a backfilled event: before %v, want %v", got, want[i+1:i+3])
	}
}
