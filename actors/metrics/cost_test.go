package metrics

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// What measuring costs. Each benchmark reports cpu-ns/op, the process's
// CPU time per operation, besides the wall time: on a busy machine the
// wall time mostly measures the other processes.

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkMeasureMessage is what the middleware adds to each message an
// actor handles: two clock reads, a few atomic adds, two histograms.
func BenchmarkMeasureMessage(b *testing.B) {
	a := New(Options{}).NewActivation(KindRoom, "!r:x")
	receive := a.middleware(func(actor.ReceiverContext, *actor.MessageEnvelope) {})
	env := &actor.MessageEnvelope{Message: "work"}
	cpu := processCPU()
	b.ResetTimer()
	for range b.N {
		receive(nil, env)
	}
	reportCPU(b, cpu)
}

// BenchmarkMeasureCommit is what a room actor adds to each commit: the
// batch, the commit and the room's head.
func BenchmarkMeasureCommit(b *testing.B) {
	a := New(Options{}).NewActivation(KindRoom, "!r:x")
	head := RoomHead{Epoch: 1, Depth: 2, JoinedMembers: 3, ForwardExtremities: 1, StateEvents: 9}
	cpu := processCPU()
	b.ResetTimer()
	for range b.N {
		a.ObserveBatch(1)
		a.ObserveCommit(1, time.Millisecond)
		a.PublishRoom(head)
	}
	reportCPU(b, cpu)
}

// echo answers every string at once.
type echo struct{}

func (echo) Receive(ctx actor.Context) {
	if s, ok := ctx.Message().(string); ok {
		ctx.Respond(s)
	}
}

// BenchmarkActorRoundTrip is a request to an actor that answers at once
// (the path of RoomRouter.RequestRoom), unmeasured and measured.
func BenchmarkActorRoundTrip(b *testing.B) {
	for _, measured := range []bool{false, true} {
		name := "unmeasured"
		if measured {
			name = "measured"
		}
		b.Run(name, func(b *testing.B) {
			system := quietSystem()
			defer system.Shutdown()
			var a *Activation // nil: plain props
			if measured {
				a = New(Options{MaxRoomSeries: DefaultMaxRoomSeries}).NewActivation(KindRoom, "!r:x")
			}
			pid := system.Root.Spawn(a.Props(func() actor.Actor { return echo{} }))
			cpu := processCPU()
			b.ResetTimer()
			for range b.N {
				if _, err := system.Root.RequestFuture(pid, "ping", 10*time.Second).Result(); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}
