package rooms_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentSendsShareCommitsAndKeepOneChain: 16 senders at once into
// one room; commands waiting in the mailbox are committed together, each
// still gets its own event, and the room stays one linear chain.
func TestConcurrentSendsShareCommitsAndKeepOneChain(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!batch:test.local"
	h.createRoom(room)
	startCommits, startEvents := h.store.commits.Load(), h.store.events.Load()

	const senders, each = 16, 20
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r := h.send(room, fmt.Sprint("DEV", s), fmt.Sprint("t", i), "x")
				if r.Error != nil {
					t.Errorf("send: %v", r.Error)
					return
				}
				mu.Lock()
				ids[r.EventId] = true
				mu.Unlock()
			}
		}(s)
	}
	wg.Wait()
	if len(ids) != senders*each {
		t.Fatalf("%d distinct events for %d sends", len(ids), senders*each)
	}
	commits, events := h.store.commits.Load()-startCommits, h.store.events.Load()-startEvents
	t.Logf("%d events in %d commits", events, commits)
	if events != senders*each || commits >= events {
		t.Errorf("%d events in %d commits: concurrent sends were not grouped", events, commits)
	}
	// One chain: in stream order every event follows the one before it.
	nid, _, err := h.store.RoomInfo(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := h.store.RoomEvents(context.Background(), nid, 0, 1<<40, 1000, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(evs); i++ {
		if prev := h.prevOf(evs[i].EventID); len(prev) != 1 || prev[0] != evs[i-1].EventID {
			t.Fatalf("event %d has prev_events %v, want [%s]: the room forked", i, prev, evs[i-1].EventID)
		}
	}
}

// TestRetryInTheSameBatchGetsTheSameEvent: a client retrying before its
// first attempt was answered must not create a second event.
func TestRetryInTheSameBatchGetsTheSameEvent(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!retry:test.local"
	h.createRoom(room)
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		got := make([]string, 4)
		for i := range got {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := h.send(room, "DEV", fmt.Sprint("same-", round), "x")
				if r.Error != nil {
					t.Errorf("send: %v", r.Error)
				}
				got[i] = r.EventId
			}(i)
		}
		wg.Wait()
		for _, id := range got {
			if id != got[0] {
				t.Fatalf("round %d: retries of one txn gave %v", round, got)
			}
		}
	}
}
