package actors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/messages"
)

// gate is a room actor that answers only when released, so that requests
// pile up in its mailbox.
type gate struct{ release chan struct{} }

func (g *gate) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*messages.SendEvent); ok {
		<-g.release
		ctx.Respond(&messages.SendEventReply{EventId: "$ok"})
	}
}

func TestFullRoomFailsFastWithBusy(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	g := &gate{release: make(chan struct{})}
	open := make(chan struct{})
	close(open)
	r := NewLocalRoomRouter(system, func(roomID string) actor.Producer {
		if roomID == "!r:x" {
			return func() actor.Actor { return g }
		}
		return func() actor.Actor { return &gate{release: open} }
	})
	r.MaxQueued = 3

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.RequestRoom(context.Background(), "!r:x", &messages.SendEvent{})
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.inflight("!r:x") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("requests did not queue")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := r.RequestRoom(context.Background(), "!r:x", &messages.SendEvent{}); !errors.Is(err, ErrRoomBusy) {
		t.Fatalf("a fourth request to a full room: %v, want ErrRoomBusy", err)
	}
	if _, err := r.RequestRoom(context.Background(), "!other:x", &messages.SendEvent{}); errors.Is(err, ErrRoomBusy) {
		t.Fatal("another room must not be affected")
	}
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued request failed: %v", err)
		}
	}
}

// fragile panics on every SendEvent whose txn ID is "boom" (after
// answering it, as room actors do) and answers the others.
type fragile struct{}

func (fragile) Receive(ctx actor.Context) {
	if msg, ok := ctx.Message().(*messages.SendEvent); ok {
		ctx.Respond(&messages.SendEventReply{EventId: "$" + msg.TxnId})
		if msg.TxnId == "boom" {
			panic("injected")
		}
	}
}

func TestRoomActorsRestartHoweverOften(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	r := NewLocalRoomRouter(system, func(string) actor.Producer { return func() actor.Actor { return fragile{} } })
	ctx := context.Background()
	if _, err := r.RequestRoom(ctx, "!r:x", &messages.SendEvent{TxnId: "ok"}); err != nil {
		t.Fatal(err)
	}
	first := r.rooms["!r:x"].pid
	// More failures than protoactor's default strategy allows (10 in 10 s).
	for i := 0; i < 15; i++ {
		if _, err := r.RequestRoom(ctx, "!r:x", &messages.SendEvent{TxnId: "boom"}); err != nil {
			t.Fatalf("panic %d: %v", i, err)
		}
	}
	if _, err := r.RequestRoom(ctx, "!r:x", &messages.SendEvent{TxnId: "ok"}); err != nil {
		t.Fatal(err)
	}
	if got := r.rooms["!r:x"].pid; !got.Equal(first) {
		t.Fatalf("the activation was replaced (%v → %v): it was stopped, not restarted", first, got)
	}
}

func TestRequestActiveRoomNeverActivates(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	open := make(chan struct{})
	close(open)
	spawned := 0
	r := NewLocalRoomRouter(system, func(string) actor.Producer {
		spawned++
		return func() actor.Actor { return &gate{release: open} }
	})
	ctx := context.Background()
	if _, err := r.RequestActiveRoom(ctx, "!r:x", &messages.SendEvent{}); !errors.Is(err, ErrRoomNotActive) {
		t.Fatalf("RequestActiveRoom of a sleeping room: %v, want ErrRoomNotActive", err)
	}
	if spawned != 0 || r.Active() != 0 {
		t.Fatalf("RequestActiveRoom activated the room (%d spawned, %d active)", spawned, r.Active())
	}
	if _, err := r.RequestRoom(ctx, "!r:x", &messages.SendEvent{}); err != nil {
		t.Fatal(err)
	}
	reply, err := r.RequestActiveRoom(ctx, "!r:x", &messages.SendEvent{})
	if err != nil || reply.(*messages.SendEventReply).EventId != "$ok" {
		t.Fatalf("RequestActiveRoom of a live room: %v, %v", reply, err)
	}
	if spawned != 1 {
		t.Fatalf("%d activations, want 1", spawned)
	}
}

// fencedOff answers every SendEvent as a fenced-off activation does.
type fencedOff struct{ pid chan<- *actor.PID }

func (f fencedOff) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*messages.SendEvent); ok {
		f.pid <- ctx.Self()
		ctx.Respond(&messages.SendEventReply{Error: &messages.Error{Errcode: "M_UNKNOWN", HttpStatus: 503, Moved: true}})
	}
}

func TestMovedCommandFollowsTheRoomToTheLiveActivation(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	open := make(chan struct{})
	close(open)
	stale := make(chan *actor.PID, 1)
	spawned := 0
	r := NewLocalRoomRouter(system, func(string) actor.Producer {
		spawned++
		if spawned == 1 {
			return func() actor.Actor { return fencedOff{pid: stale} }
		}
		return func() actor.Actor { return &gate{release: open} }
	})
	reply, err := r.RequestRoom(context.Background(), "!r:x", &messages.SendEvent{})
	if err != nil || reply.(*messages.SendEventReply).EventId != "$ok" {
		t.Fatalf("reply %v, %v; want $ok from the live activation", reply, err)
	}
	if spawned != 2 || r.Active() != 1 || r.Retiring() != 1 {
		t.Fatalf("spawned %d, active %d, retiring %d; want 2, 1, 1", spawned, r.Active(), r.Retiring())
	}
	// The fenced-off activation may stop now that nothing is on its way.
	if !r.Passivate("!r:x", <-stale) || r.Retiring() != 0 || r.Active() != 1 {
		t.Fatalf("retiring %d, active %d after the stale activation stopped", r.Retiring(), r.Active())
	}

	// A room that keeps answering moved gives up after maxMovedRetries.
	spawned = 0
	always := NewLocalRoomRouter(system, func(string) actor.Producer {
		spawned++
		return func() actor.Actor { return fencedOff{pid: make(chan *actor.PID, 1)} }
	})
	reply, err = always.RequestRoom(context.Background(), "!r:x", &messages.SendEvent{})
	if err != nil || !reply.(*messages.SendEventReply).Error.GetMoved() || spawned != maxMovedRetries+1 {
		t.Fatalf("reply %v, %v after %d activations; want the moved refusal after %d", reply, err, spawned, maxMovedRetries+1)
	}
}
