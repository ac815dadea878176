package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestIncrementalSyncNeverSkipsAnEvent: while senders commit concurrently
// into several rooms (on PostgreSQL, commits finish out of position order),
// a client syncing incrementally sees every event exactly once.
func TestIncrementalSyncNeverSkipsAnEvent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		// The sync loop below polls without a timeout as fast as it can, so
		// how many requests it makes depends on the machine's speed: with
		// the default per-address limit a slow (loaded, -race) run gets 429s.
		// Rate limits are not what this test is about.
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob := srv.register("alice"), srv.register("bob")
		var roomIDs []string
		for i := 0; i < 4; i++ {
			var created struct {
				RoomID string `json:"room_id"`
			}
			alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
			bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(created.RoomID)+"/join", map[string]any{}, nil)
			roomIDs = append(roomIDs, created.RoomID)
		}
		since := bob.sync("", 0).NextBatch

		var sent sync.Map
		var done atomic.Bool
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 15; i++ {
					id := alice.send(roomIDs[(w+i)%len(roomIDs)], fmt.Sprint("g", w, "-", i), "x")
					sent.Store(id, true)
				}
			}(w)
		}
		seen := map[string]int{}
		collect := func(s syncResp) {
			for _, jr := range s.Rooms.Join {
				for _, e := range jr.Timeline.Events {
					seen[e.EventID]++
				}
				if jr.Timeline.Limited {
					t.Errorf("a timeline was limited; raise the filter's limit")
				}
			}
		}
		go func() { wg.Wait(); done.Store(true) }()
		filter := `{"room":{"timeline":{"limit":200}}}`
		for !done.Load() {
			s := bob.syncFilterSince(filter, since)
			collect(s)
			since = s.NextBatch
		}
		collect(bob.syncFilterSince(filter, since))

		n := 0
		sent.Range(func(k, _ any) bool {
			n++
			if seen[k.(string)] != 1 {
				t.Errorf("event %s seen %d times through incremental syncs", k, seen[k.(string)])
			}
			return true
		})
		if n != 120 {
			t.Fatalf("%d sends acknowledged, want 120", n)
		}
	})
}
