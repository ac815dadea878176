package actors

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
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

// TestTenThousandActiveRoomsStayWithinTheSeriesCap activates 10,000 real
// room actors through the router and scrapes the node's collector: only
// the cap's worth of rooms get room_id series, however many are active.
func TestTenThousandActiveRoomsStayWithinTheSeriesCap(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 actors")
	}
	const rooms, maxSeries = 10000, 25
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	open := make(chan struct{})
	close(open)
	r := NewLocalRoomRouter(system, func(string) actor.Producer { return func() actor.Actor { return &gate{release: open} } })
	r.Metrics = metrics.New(metrics.Options{MaxRoomSeries: maxSeries})
	for i := range rooms {
		if _, err := r.RequestRoom(context.Background(), fmt.Sprintf("!room%d:x", i), &messages.SendEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Metrics)
	start := time.Now()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one scrape with %d active rooms took %v", r.Active(), time.Since(start))
	labelled := map[string]bool{}
	for _, f := range fams {
		perFamily := 0
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "room_id" {
					labelled[l.GetValue()] = true
					perFamily++
				}
			}
		}
		if perFamily > maxSeries {
			t.Errorf("%s has %d room series, more than the cap %d", f.GetName(), perFamily, maxSeries)
		}
		if f.GetName() == "soma_actors_active" && f.GetMetric()[0].GetGauge().GetValue() != rooms {
			t.Errorf("soma_actors_active = %v, want %d", f.GetMetric()[0].GetGauge().GetValue(), rooms)
		}
	}
	if len(labelled) != maxSeries {
		t.Fatalf("%d rooms exported with a room_id label, want the cap %d", len(labelled), maxSeries)
	}
}
