package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// sendType sends an event of any type and returns its ID.
func (c *client) sendType(roomID, typ, txn string, content map[string]any) string {
	c.t.Helper()
	var res struct {
		EventID string `json:"event_id"`
	}
	c.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/send/"+typ+"/"+txn, content, &res)
	return res.EventID
}

// members returns the state keys of the m.room.member events in evs.
func members(evs []event) map[string]bool {
	out := map[string]bool{}
	for _, e := range evs {
		if e.Type == "m.room.member" && e.StateKey != nil {
			out[*e.StateKey] = true
		}
	}
	return out
}

// TestSyncAndMessagesApplyFilters: event, sender and room filters on /sync
// and /messages, lazy-loaded members, and bad filters refused.
func TestSyncAndMessagesApplyFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		alice, bob, carol := srv.register("alice"), srv.register("bob"), srv.register("carol")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID
		for _, c := range []*client{bob, carol} {
			c.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat"}, &created)
		other := created.RoomID

		// Messages from three senders, with notes of another type between.
		type sent struct{ id, typ, sender string }
		var all []sent
		for i := 0; i < 6; i++ {
			for _, c := range []*client{alice, bob, carol} {
				all = append(all, sent{c.send(room, fmt.Sprint("m", i), fmt.Sprint(c.userID, i)), "m.room.message", c.userID})
			}
			all = append(all, sent{bob.sendType(room, "org.example.note", fmt.Sprint("n", i), map[string]any{"n": i}), "org.example.note", bob.userID})
		}
		alice.send(other, "o1", "elsewhere")

		// types (with a wildcard) and limit: only messages; older ones exist,
		// so the timeline is limited.
		s := alice.syncFilter(`{"room":{"timeline":{"types":["m.room.mess*"],"limit":4}}}`)
		tl := s.Rooms.Join[room].Timeline
		if len(tl.Events) != 4 || !tl.Limited {
			t.Fatalf("types filter: %d events, limited=%v; want 4, limited", len(tl.Events), tl.Limited)
		}
		var msgs []sent
		for _, e := range all {
			if e.typ == "m.room.message" {
				msgs = append(msgs, e)
			}
		}
		for i, e := range tl.Events {
			if want := msgs[len(msgs)-4+i]; e.EventID != want.id {
				t.Fatalf("types filter: timeline[%d] = %s %s, want %s", i, e.Type, e.EventID, want.id)
			}
		}

		// /messages from prev_batch with the same filter goes on without a gap.
		msgFilter := url.QueryEscape(`{"types":["m.room.message"]}`)
		var got []string
		from := tl.PrevBatch
		for from != "" {
			var page struct {
				Chunk []event `json:"chunk"`
				End   string  `json:"end"`
			}
			alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/messages?dir=b&limit=3&filter="+msgFilter+"&from="+from, nil, &page)
			for _, e := range page.Chunk {
				if e.Type != "m.room.message" {
					t.Fatalf("/messages with types filter returned %s", e.Type)
				}
				got = append(got, e.EventID)
			}
			from = page.End
		}
		if len(got) != len(msgs)-4 {
			t.Fatalf("/messages paged %d messages before the timeline, want %d", len(got), len(msgs)-4)
		}
		for i, id := range got {
			if want := msgs[len(msgs)-5-i].id; id != want {
				t.Fatalf("/messages[%d] = %s, want %s (no gap, no repeat)", i, id, want)
			}
		}

		// not_senders, and rooms.
		s = alice.syncFilter(fmt.Sprintf(`{"room":{"timeline":{"not_senders":[%q],"limit":50}}}`, bob.userID))
		if len(s.Rooms.Join[room].Timeline.Events) == 0 {
			t.Fatal("not_senders filter: empty timeline")
		}
		for _, e := range s.Rooms.Join[room].Timeline.Events {
			if e.Sender == bob.userID {
				t.Fatalf("not_senders filter let %s's %s through", e.Sender, e.Type)
			}
		}
		s = alice.syncFilter(fmt.Sprintf(`{"room":{"rooms":[%q]}}`, other))
		if _, ok := s.Rooms.Join[room]; ok || len(s.Rooms.Join) != 1 {
			t.Fatalf("rooms filter: joined rooms %v, want only %s", joinedIDs(s.Rooms.Join), other)
		}
		s = alice.syncFilter(fmt.Sprintf(`{"room":{"not_rooms":[%q],"rooms":[%q,%q]}}`, other, other, room))
		if _, ok := s.Rooms.Join[other]; ok {
			t.Fatal("not_rooms did not beat rooms")
		}

		// Lazy loading on a new device: the last message is carol's, so the
		// state carries carol's and alice's members, not bob's.
		lazyAlice := srv.login("alice")
		lazy := `{"room":{"rooms":["` + room + `"],"state":{"lazy_load_members":true},"timeline":{"types":["m.room.message"],"limit":1}}}`
		s = lazyAlice.syncFilter(lazy)
		if m := members(s.Rooms.Join[room].State.Events); !m[carol.userID] || !m[alice.userID] || m[bob.userID] {
			t.Fatalf("lazy initial sync: members %v, want carol and alice only", m)
		}
		if !hasEvent(s.Rooms.Join[room].State.Events, "m.room.create", "") {
			t.Fatal("lazy initial sync lost the other state")
		}
		// bob speaks: his member comes now; carol speaks: nothing new.
		bob.send(room, "lb", "bob again")
		s = lazyAlice.syncFilterSince(lazy, s.NextBatch)
		if m := members(s.Rooms.Join[room].State.Events); !m[bob.userID] || len(m) != 1 {
			t.Fatalf("lazy incremental sync after bob spoke: members %v, want bob", m)
		}
		carol.send(room, "lc", "carol again")
		s = lazyAlice.syncFilterSince(lazy, s.NextBatch)
		if m := members(s.Rooms.Join[room].State.Events); len(m) != 0 {
			t.Fatalf("lazy incremental sync after carol spoke: members %v, want none (already sent)", m)
		}
		redundant := `{"room":{"rooms":["` + room + `"],"state":{"lazy_load_members":true,"include_redundant_members":true},"timeline":{"types":["m.room.message"]}}}`
		carol.send(room, "lc2", "carol once more")
		s = lazyAlice.syncFilterSince(redundant, s.NextBatch)
		if m := members(s.Rooms.Join[room].State.Events); !m[carol.userID] {
			t.Fatalf("include_redundant_members: members %v, want carol again", m)
		}

		// /messages with lazy_load_members: state holds the chunk's senders.
		var page struct {
			Chunk []event `json:"chunk"`
			State []event `json:"state"`
		}
		alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/messages?dir=b&limit=3&filter="+
			url.QueryEscape(fmt.Sprintf(`{"lazy_load_members":true,"senders":[%q,%q]}`, bob.userID, carol.userID)), nil, &page)
		if len(page.Chunk) != 3 || page.Chunk[0].Sender != carol.userID || page.Chunk[1].Sender != carol.userID || page.Chunk[2].Sender != bob.userID {
			t.Fatalf("/messages senders filter: %+v", page.Chunk)
		}
		if m := members(page.State); !m[bob.userID] || !m[carol.userID] || m[alice.userID] {
			t.Fatalf("/messages lazy state: members %v, want bob and carol", m)
		}

		// Bad filters are refused.
		for _, path := range []string{
			"/_matrix/client/v3/sync?filter=" + url.QueryEscape(`{"room":{"timeline":{"types":"m.room.message"}}}`),
			"/_matrix/client/v3/rooms/" + pathEscape(room) + "/messages?dir=b&filter=" + url.QueryEscape(`{"senders":"x"}`),
		} {
			var e struct {
				ErrCode string `json:"errcode"`
			}
			if code := alice.do("GET", path, nil, &e); code != http.StatusBadRequest || e.ErrCode != "M_INVALID_PARAM" {
				t.Errorf("GET %s: %d %s, want 400 M_INVALID_PARAM", path, code, e.ErrCode)
			}
		}
	})
}

func joinedIDs[V any](m map[string]V) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}
