package metrics

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Activation is the live figures of one activation of an actor: from its
// spawn to its stop, across restarts. The actor's goroutine writes them
// (atomics); scrapes and the admin API read them concurrently. Its methods
// do nothing on a nil *Activation, so an actor spawned without metrics
// (a unit test) needs no checks.
type Activation struct {
	owner *Actors
	kind  *kind
	id    string

	mailbox     atomic.Pointer[mailboxRef]
	activatedAt atomic.Int64 // Unix nanoseconds; 0 until the first Started
	// incarnations counts Started messages; only the actor's goroutine
	// touches it.
	incarnations int

	processed   atomic.Uint64
	events      atomic.Uint64
	recent      window // events committed per second
	restarts    atomic.Uint64
	lastFailure atomic.Pointer[failure]

	latency, commit, batch, stateRes *histogram

	// What a room actor publishes after it loads or commits.
	epoch, depth, joined, extremities, stateEvents atomic.Int64
}

type mailboxRef struct{ actor.Mailbox }

// failure is the last panic of an activation.
type failure struct {
	reason string
	at     time.Time
}

// maxReasonLen bounds a kept panic reason.
const maxReasonLen = 512

// NewActivation returns the figures of a new activation of an actor of
// kindName; id names it (the room ID), "" for a per-node singleton. Spawn
// it with Props so that it is measured.
func (m *Actors) NewActivation(kindName, id string) *Activation {
	return &Activation{
		owner: m, kind: m.kind(kindName), id: id,
		latency:  newHistogram(durationBuckets),
		commit:   newHistogram(durationBuckets),
		batch:    newHistogram(batchBuckets),
		stateRes: newHistogram(durationBuckets),
	}
}

// Measured is implemented by actors that record figures of their own (a
// room actor: its batches and commits). Props hands each incarnation its
// activation's figures before it receives anything.
type Measured interface {
	Measure(*Activation)
}

// Props returns the props of an actor measured by a: its mailbox is
// counted, every message timed, lifecycle and panics recorded. On a nil
// *Activation it returns plain props.
func (a *Activation) Props(producer actor.Producer, opts ...actor.PropsOption) *actor.Props {
	if a == nil {
		return actor.PropsFromProducer(producer, opts...)
	}
	measured := func() actor.Actor {
		act := producer()
		if m, ok := act.(Measured); ok {
			m.Measure(a)
		}
		return act
	}
	mailbox := actor.Unbounded()
	return actor.PropsFromProducer(measured, append([]actor.PropsOption{
		actor.WithMailbox(func() actor.Mailbox {
			mb := mailbox()
			a.mailbox.Store(&mailboxRef{mb})
			return mb
		}),
		actor.WithReceiverMiddleware(a.middleware),
	}, opts...)...)
}

// middleware times the actor's messages and follows its lifecycle. It
// runs on the actor's goroutine.
func (a *Activation) middleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		defer func() {
			if p := recover(); p != nil {
				a.failed(p)
				panic(p) // the mailbox escalates it to the supervisor
			}
		}()
		switch env.Message.(type) {
		case *actor.Started:
			a.started()
			next(c, env)
			return
		case *actor.Restarting:
			a.restarts.Add(1)
			a.kind.restarts.Inc()
			next(c, env)
			return
		case *actor.Stopped:
			next(c, env)
			a.stopped()
			return
		case actor.SystemMessage, actor.AutoReceiveMessage:
			next(c, env)
			return
		}
		start := time.Now()
		next(c, env)
		took := time.Since(start)
		a.processed.Add(1)
		a.latency.observe(took.Seconds())
		a.kind.processed.Inc()
		a.kind.msgDuration.Observe(took.Seconds())
	}
}

func (a *Activation) started() {
	a.incarnations++
	if a.incarnations > 1 {
		return // a restart, counted on Restarting
	}
	a.activatedAt.Store(a.owner.now().UnixNano())
	a.kind.activations.Inc()
	a.owner.activated(a)
}

func (a *Activation) stopped() {
	a.kind.passivations.Inc()
	a.owner.deactivated(a)
}

func (a *Activation) failed(p any) {
	reason := fmt.Sprint(p)
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen] + "…"
	}
	a.lastFailure.Store(&failure{reason: reason, at: a.owner.now()})
}

// MailboxDepth is how many messages wait in the actor's mailbox.
func (a *Activation) MailboxDepth() int {
	if a == nil {
		return 0
	}
	if mb := a.mailbox.Load(); mb != nil {
		return mb.UserMessageCount()
	}
	return 0
}

// ObserveBatch records a batch of n commands gathered for one commit.
func (a *Activation) ObserveBatch(n int) {
	if a == nil {
		return
	}
	a.batch.observe(float64(n))
	a.kind.writing().batchSize.Observe(float64(n))
}

// ObserveCommit records a commit of events that took took.
func (a *Activation) ObserveCommit(events int, took time.Duration) {
	if a == nil {
		return
	}
	w := a.kind.writing()
	a.commit.observe(took.Seconds())
	w.commitDuration.Observe(took.Seconds())
	a.events.Add(uint64(events))
	w.events.Add(float64(events))
	a.recent.add(a.owner.now().Unix(), uint64(events))
}

// ObserveStateResolution records a state resolution that took took: a
// room resolving the states of its forward extremities, or of a remote
// event's prev events.
func (a *Activation) ObserveStateResolution(took time.Duration) {
	if a == nil {
		return
	}
	a.stateRes.observe(took.Seconds())
	a.kind.writing().stateRes.Observe(took.Seconds())
}

// RoomHead is what a room actor publishes about its room after loading or
// committing it.
type RoomHead struct {
	Epoch, Depth       int64
	JoinedMembers      int
	ForwardExtremities int
	StateEvents        int
}

// PublishRoom records the room's head for scrapes and the admin API.
func (a *Activation) PublishRoom(h RoomHead) {
	if a == nil {
		return
	}
	a.epoch.Store(h.Epoch)
	a.depth.Store(h.Depth)
	a.joined.Store(int64(h.JoinedMembers))
	a.extremities.Store(int64(h.ForwardExtremities))
	a.stateEvents.Store(int64(h.StateEvents))
}
