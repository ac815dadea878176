package main

import (
	"fmt"
	"sync"
	"testing"
)

// TestPaginationNeverSkipsOrRepeats: concurrent senders give many events
// the same depth; paging /messages in small pages both ways must still
// list every event exactly once, in one order.
func TestPaginationNeverSkipsOrRepeats(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		alice, bob := srv.register("alice"), srv.register("bob")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID
		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/join", map[string]any{}, nil)

		var wg sync.WaitGroup
		for _, c := range []*client{alice, bob} {
			for w := 0; w < 3; w++ {
				wg.Add(1)
				go func(c *client, w int) {
					defer wg.Done()
					for i := 0; i < 10; i++ {
						c.send(room, fmt.Sprintf("w%d-%d", w, i), "m")
					}
				}(c, w)
			}
		}
		wg.Wait()

		back := alice.history(room)
		seen := map[string]bool{}
		for _, e := range back {
			if seen[e.EventID] {
				t.Fatalf("event %s listed twice", e.EventID)
			}
			seen[e.EventID] = true
		}
		msgs := 0
		for _, e := range back {
			if e.Type == "m.room.message" {
				msgs++
			}
		}
		if msgs != 60 {
			t.Fatalf("backward pages list %d messages, want 60", msgs)
		}
		// Forward from the start gives the same events in reverse.
		var fwd []event
		from := "s0"
		for {
			var page struct {
				Chunk []event `json:"chunk"`
				End   string  `json:"end"`
			}
			alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/messages?dir=f&limit=5&from="+from, nil, &page)
			fwd = append(fwd, page.Chunk...)
			if page.End == "" {
				break
			}
			from = page.End
		}
		if len(fwd) != len(back) {
			t.Fatalf("forward pages list %d events, backward %d", len(fwd), len(back))
		}
		for i := range fwd {
			if fwd[i].EventID != back[len(back)-1-i].EventID {
				t.Fatalf("orders differ at %d: %s vs %s", i, fwd[i].EventID, back[len(back)-1-i].EventID)
			}
		}
	})
}
