package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/actors/metrics"
)

func TestRouterMeasuresEachRoomActor(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	g := &gate{release: make(chan struct{})}
	r := NewLocalRoomRouter(system, func(string) actor.Producer { return func() actor.Actor { return g } })

	const requests = 10
	var wg sync.WaitGroup
	for range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.RequestRoom(context.Background(), "!r:x", &messages.SendEvent{}); err != nil {
				t.Error(err)
			}
		}()
	}
	depth := func() int { s, _ := r.Metrics.Room("!r:x"); return s.MailboxDepth }
	deadline := time.Now().Add(10 * time.Second)
	for depth() != requests-1 {
		if time.Now().After(deadline) {
			t.Fatalf("mailbox depth %d, want %d while the actor is blocked", depth(), requests-1)
		}
		time.Sleep(time.Millisecond)
	}
	if stats := r.Metrics.RoomStats(); len(stats) != 1 || stats[0].RoomID != "!r:x" {
		t.Fatalf("RoomStats = %+v, want the one active room", stats)
	}

	close(g.release)
	wg.Wait()
	// The actor answers a request before its metrics middleware counts the
	// message, so the last requester can return before the count is in.
	deadline = time.Now().Add(10 * time.Second)
	for {
		s, ok := r.Metrics.Room("!r:x")
		if ok && s.MailboxDepth == 0 && s.MessagesProcessed == requests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the release: %+v, want an empty mailbox and %d messages processed", s, requests)
		}
		time.Sleep(time.Millisecond)
	}
	if n := r.Metrics.Active(metrics.KindRoom); n != 1 {
		t.Fatalf("active rooms = %d, want 1", n)
	}
}
