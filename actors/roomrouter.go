package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/actors/metrics"
)

// RoomRouter finds a room's actor and delivers a command to it. On a single
// node it is LocalRoomRouter; a clustered router (grains by room ID) comes
// with the cluster.
type RoomRouter interface {
	RequestRoom(ctx context.Context, roomID string, msg proto.Message) (proto.Message, error)
}

// ErrRoomUnavailable means the room's actor did not answer in time.
var ErrRoomUnavailable = errors.New("actors: room actor unavailable")

// ErrRoomNotActive means no actor of the room is alive (RequestActiveRoom
// does not activate one).
var ErrRoomNotActive = errors.New("actors: no active actor of the room")

// ErrRoomBusy means the room already has as many commands waiting as it
// may queue: the caller should retry later rather than queue more.
var ErrRoomBusy = errors.New("actors: room busy")

// DefaultMaxQueued is how many commands may wait for one room's actor.
const DefaultMaxQueued = 1000

// defaultRequestTimeout applies when the caller's context has no deadline.
const defaultRequestTimeout = 30 * time.Second

// RoomProducer makes the actor of one room.
type RoomProducer func(roomID string) actor.Producer

// LocalRoomRouter spawns room actors on demand in this process, one per
// room, and lets idle ones passivate without losing a request: it counts
// requests in flight per activation, and an activation may only stop when
// none is (see Passivate).
type LocalRoomRouter struct {
	system   *actor.ActorSystem
	producer RoomProducer
	// MaxQueued bounds the commands in flight to one room (its mailbox and
	// the batch being committed); past it RequestRoom fails fast with
	// ErrRoomBusy instead of letting memory grow. Set before use.
	MaxQueued int
	// Metrics measures the room actors (per room and in total); nil
	// measures nothing. NewLocalRoomRouter gives the router its own; set
	// the node's before use.
	Metrics *metrics.Actors

	mu    sync.Mutex
	rooms map[string]*activation
	// retiring are fenced-off activations no request is routed to any
	// more, by PID ID, until the requests already on their way are
	// answered and they may stop.
	retiring map[string]*activation
}

type activation struct {
	pid      *actor.PID
	inflight int
}

// NewLocalRoomRouter returns a router over system. Room actors restart on
// panic (and reload from storage), however often.
func NewLocalRoomRouter(system *actor.ActorSystem, producer RoomProducer) *LocalRoomRouter {
	return &LocalRoomRouter{
		system: system, producer: producer, MaxQueued: DefaultMaxQueued,
		Metrics: metrics.New(metrics.Options{MaxRoomSeries: metrics.DefaultMaxRoomSeries}),
		rooms:   map[string]*activation{}, retiring: map[string]*activation{},
	}
}

// RequestRoom implements RoomRouter.
func (r *LocalRoomRouter) RequestRoom(ctx context.Context, roomID string, msg proto.Message) (proto.Message, error) {
	return r.request(ctx, roomID, msg, true)
}

// RequestActiveRoom delivers msg only to a live actor of the room, never
// activating one: ErrRoomNotActive when there is none. Observers (the
// admin API) use it so that looking at a room does not wake it.
func (r *LocalRoomRouter) RequestActiveRoom(ctx context.Context, roomID string, msg proto.Message) (proto.Message, error) {
	return r.request(ctx, roomID, msg, false)
}

// maxMovedRetries bounds how often one command follows its room to a newer
// activation; past it the caller gets the moved refusal (a 503 to retry).
const maxMovedRetries = 3

func (r *LocalRoomRouter) request(ctx context.Context, roomID string, msg proto.Message, activate bool) (proto.Message, error) {
	timeout := defaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, ErrRoomUnavailable
	}
	for moved := 0; ; {
		act, err := r.acquire(roomID, activate)
		if err != nil {
			return nil, err
		}
		res, err := r.system.Root.RequestFuture(act.pid, msg, timeout).Result()
		r.release(act)
		if errors.Is(err, actor.ErrDeadLetter) && r.forget(roomID, act) {
			// The activation died without passivating (nothing delivered the
			// command): the next attempt spawns a fresh one.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrRoomUnavailable, roomID, err)
		}
		reply, ok := res.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("actors: room %s replied with %T", roomID, res)
		}
		if isMoved(reply) && moved < maxMovedRetries {
			// A newer activation (on another node, in a cluster) fenced
			// this one off and it stored nothing: stop routing to it and
			// send the command to the live one.
			moved++
			r.retire(roomID, act)
			continue
		}
		return reply, nil
	}
}

// isMoved reports whether a room's reply is the refusal of a fenced-off
// activation (messages.Error.moved).
func isMoved(reply proto.Message) bool {
	e, ok := reply.(interface{ GetError() *messages.Error })
	return ok && e.GetError().GetMoved()
}

// acquire returns the room's activation, spawning it if needed and
// allowed, counting one more request in flight; ErrRoomBusy when the room
// is at MaxQueued.
func (r *LocalRoomRouter) acquire(roomID string, activate bool) (*activation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	act := r.rooms[roomID]
	if act != nil && r.MaxQueued > 0 && act.inflight >= r.MaxQueued {
		return nil, fmt.Errorf("%w: %s", ErrRoomBusy, roomID)
	}
	if act == nil && !activate {
		return nil, fmt.Errorf("%w: %s", ErrRoomNotActive, roomID)
	}
	if act == nil {
		var measured *metrics.Activation // nil: not measured
		if r.Metrics != nil {
			measured = r.Metrics.NewActivation(metrics.KindRoom, roomID)
		}
		// The guardian, not WithSupervisor (which governs an actor's
		// children), decides for a root-spawned actor; protoactor's default
		// stops an actor after 10 failures in 10 s, leaving the room dead.
		props := measured.Props(r.producer(roomID),
			actor.WithGuardian(actor.NewRestartingStrategy()))
		act = &activation{pid: r.system.Root.Spawn(props)}
		r.rooms[roomID] = act
	}
	act.inflight++
	return act, nil
}

func (r *LocalRoomRouter) release(act *activation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	act.inflight--
}

// forget drops a dead activation, reporting whether it was still the
// room's current one.
func (r *LocalRoomRouter) forget(roomID string, act *activation) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rooms[roomID] != act {
		return r.rooms[roomID] != nil // another activation already took over
	}
	delete(r.rooms, roomID)
	return true
}

// retire stops routing to a fenced-off activation (if it is still the
// room's current one); it may stop once its requests are answered.
func (r *LocalRoomRouter) retire(roomID string, act *activation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rooms[roomID] == act {
		delete(r.rooms, roomID)
		r.retiring[act.pid.Id] = act
	}
}

// Passivate is called by a room actor that wants to stop. It answers true,
// forgetting the activation, only when no request is on its way to it;
// the next request then spawns a fresh activation.
func (r *LocalRoomRouter) Passivate(roomID string, pid *actor.PID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	act := r.rooms[roomID]
	if act == nil || !act.pid.Equal(pid) {
		if old := r.retiring[pid.Id]; old != nil {
			if old.inflight > 0 {
				return false
			}
			delete(r.retiring, pid.Id)
		}
		return true // not ours any more
	}
	if act.inflight > 0 {
		return false
	}
	delete(r.rooms, roomID)
	return true
}

// Active returns how many room actors are alive.
func (r *LocalRoomRouter) Active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rooms)
}

// Retiring returns how many fenced-off activations have yet to stop.
func (r *LocalRoomRouter) Retiring() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.retiring)
}

// inflight is how many requests are on their way to a room's activation.
func (r *LocalRoomRouter) inflight(roomID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if act := r.rooms[roomID]; act != nil {
		return act.inflight
	}
	return 0
}
