package actors

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/persistence"
)

// SyncNotifier is the per-node actor that wakes long-polling /sync
// requests. Room actors tell it "room X reached position P" once per
// commit, whatever the room's size; it wakes only the waiters registered
// for that room or for a user whose membership changed.
type SyncNotifier struct {
	system *actor.ActorSystem
	pid    *actor.PID
	nextID atomic.Uint64
	// waiting is how many syncs are registered; the actor keeps it.
	waiting atomic.Int64
}

type waiter struct {
	id    uint64
	user  string
	rooms []string
	since persistence.StreamPos
	wake  chan struct{}
}

type registerWaiter struct{ w *waiter }
type unregisterWaiter struct{ id uint64 }

// NewSyncNotifier spawns the notifier on system, measured by m (kind
// sync_notifier) unless m is nil.
func NewSyncNotifier(system *actor.ActorSystem, m *metrics.Actors) *SyncNotifier {
	n := &SyncNotifier{system: system}
	var measured *metrics.Activation
	if m != nil {
		measured = m.NewActivation(metrics.KindSyncNotifier, "")
	}
	n.pid = system.Root.Spawn(measured.Props(func() actor.Actor { return newNotifierActor(&n.waiting) }))
	return n
}

// Waiters is how many long-polling syncs are waiting.
func (n *SyncNotifier) Waiters() int { return int(n.waiting.Load()) }

// Publish tells waiting syncs that a room advanced. Room actors call it
// after each commit.
func (n *SyncNotifier) Publish(msg *messages.RoomAdvanced) {
	n.system.Root.Send(n.pid, msg)
}

// Wait registers a waiter for the user's rooms and invites. The returned
// channel is closed when one of them advances past since (at once if one
// already has); cancel must be called when the caller stops waiting.
//
// Callers register before reading storage, so an event that commits after
// their read is always published after their registration.
func (n *SyncNotifier) Wait(userID string, roomIDs []string, since persistence.StreamPos) (<-chan struct{}, func()) {
	w := &waiter{id: n.nextID.Add(1), user: userID, rooms: roomIDs, since: since, wake: make(chan struct{})}
	n.system.Root.Send(n.pid, &registerWaiter{w: w})
	return w.wake, func() { n.system.Root.Send(n.pid, &unregisterWaiter{id: w.id}) }
}

// notifierActor owns the waiter indexes; only it touches them.
type notifierActor struct {
	waiters map[uint64]*waiter
	byRoom  map[string]map[uint64]*waiter
	byUser  map[string]map[uint64]*waiter
	// latest is each room's newest published position and latestUser each
	// user's newest membership change, so that a waiter registering after
	// an advance it has not read yet wakes at once: /sync registers after
	// its read, and a user's join of a room they were only invited to is
	// not in the rooms it waits on.
	latest     map[string]persistence.StreamPos
	latestUser map[string]persistence.StreamPos
	// waiting publishes len(waiters) for metrics.
	waiting *atomic.Int64
}

func newNotifierActor(waiting *atomic.Int64) *notifierActor {
	return &notifierActor{
		waiting: waiting,
		waiters: map[uint64]*waiter{},
		byRoom:  map[string]map[uint64]*waiter{},
		byUser:  map[string]map[uint64]*waiter{},
		latest:  map[string]persistence.StreamPos{},

		latestUser: map[string]persistence.StreamPos{},
	}
}

func (a *notifierActor) Receive(ctx actor.Context) {
	defer func() { a.waiting.Store(int64(len(a.waiters))) }()
	switch msg := ctx.Message().(type) {
	case *registerWaiter:
		a.register(msg.w)
	case *unregisterWaiter:
		if w := a.waiters[msg.id]; w != nil {
			a.remove(w)
		}
	case *messages.RoomAdvanced:
		pos := persistence.StreamPos(msg.StreamPos)
		// No room: a user's own stream (account data, private receipts).
		if msg.RoomId != "" && pos > a.latest[msg.RoomId] {
			a.latest[msg.RoomId] = pos
		}
		for _, w := range a.byRoom[msg.RoomId] {
			if pos > w.since {
				a.fire(w)
			}
		}
		for _, u := range msg.Users {
			if pos > a.latestUser[u] {
				a.latestUser[u] = pos
			}
			for _, w := range a.byUser[u] {
				if pos > w.since {
					a.fire(w)
				}
			}
		}
	}
}

func (a *notifierActor) register(w *waiter) {
	behind := a.latestUser[w.user] > w.since
	for _, r := range w.rooms {
		behind = behind || a.latest[r] > w.since
	}
	if behind {
		close(w.wake)
		return
	}
	a.waiters[w.id] = w
	for _, r := range w.rooms {
		index(a.byRoom, r, w)
	}
	index(a.byUser, w.user, w)
}

func (a *notifierActor) fire(w *waiter) {
	close(w.wake)
	a.remove(w)
}

func (a *notifierActor) remove(w *waiter) {
	delete(a.waiters, w.id)
	for _, r := range w.rooms {
		unindex(a.byRoom, r, w.id)
	}
	unindex(a.byUser, w.user, w.id)
}

func index(m map[string]map[uint64]*waiter, key string, w *waiter) {
	set := m[key]
	if set == nil {
		set = map[uint64]*waiter{}
		m[key] = set
	}
	set[w.id] = w
}

func unindex(m map[string]map[uint64]*waiter, key string, id uint64) {
	if set := m[key]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}
