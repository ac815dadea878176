package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/persistence"
)

// Push is one notify request to a push gateway, for one pusher.
type Push struct {
	UserID  string
	AppID   string
	Pushkey string
	EventID string
	// URL is the pusher's gateway URL; Body the notify request.
	URL  string
	Body []byte
}

// PushPlanner decides what a room's new events push: it knows the users'
// push rules and pushers (the client API implements it).
type PushPlanner interface {
	// PlanPushes returns the pushes the room's events with
	// from < position <= to cause.
	PlanPushes(ctx context.Context, roomID string, from, to persistence.StreamPos) ([]Push, error)
}

// PusherDeleter removes the pushers whose pushkeys a gateway rejected.
type PusherDeleter interface {
	DeletePusher(ctx context.Context, userID, appID, pushkey string) error
}

// PusherOptions configures a Pusher.
type PusherOptions struct {
	Planner PushPlanner
	Store   PusherDeleter
	// Start is the stream position at start-up: events at or below it are
	// never pushed (a restart does not push history again).
	Start persistence.StreamPos
	// Gateway delivers the pushes; the zero value is usable.
	Gateway GatewayOptions
	Log     zerolog.Logger
}

// Pusher is the per-node actor that sends push notifications. Room actors
// tell it "room X reached P" with the same message the sync notifier gets,
// once per commit whatever the room's size; it plans the room's pushes
// (the planner reads the room's members' pushers in one query) and
// delivers them, all off the room actor's path. Each room is planned by
// one goroutine at a time, from where its last plan ended: a burst of
// commits while a plan runs is planned together next.
type Pusher struct {
	system *actor.ActorSystem
	pid    *actor.PID
	cancel context.CancelFunc
}

// NewPusher spawns the pusher on system, measured by m (kind pusher)
// unless m is nil.
func NewPusher(system *actor.ActorSystem, opts PusherOptions, m *metrics.Actors) *Pusher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pusher{system: system, cancel: cancel}
	var measured *metrics.Activation
	if m != nil {
		measured = m.NewActivation(metrics.KindPusher, "")
	}
	gw := newGateway(opts.Gateway, opts.Store, opts.Log)
	p.pid = system.Root.Spawn(measured.Props(func() actor.Actor {
		return &pusherActor{
			ctx: ctx, opts: opts, gateway: gw, rooms: map[string]*pushRoom{},
			floor: opts.Start, pruneFloor: opts.Start, lastPrune: time.Now(),
		}
	}))
	return p
}

// Publish tells the pusher that a room advanced; room actors call it after
// each commit, beside the sync notifier's Publish.
func (p *Pusher) Publish(msg *messages.RoomAdvanced) {
	if msg.RoomId != "" {
		p.system.Root.Send(p.pid, msg)
	}
}

// Stop abandons the plans and deliveries under way (their retries too).
func (p *Pusher) Stop() { p.cancel() }

// pushRoom is where a room's pushes stand.
type pushRoom struct {
	done, want persistence.StreamPos
	planning   bool
}

// roomPlanned is a plan's end, sent by its goroutine to the actor.
type roomPlanned struct {
	roomID string
	upTo   persistence.StreamPos
}

// pruneInterval is how often rooms with nothing to do are forgotten.
const pruneInterval = time.Minute

type pusherActor struct {
	ctx     context.Context
	opts    PusherOptions
	gateway *gateway
	rooms   map[string]*pushRoom
	// floor is where a room without an entry starts: the start position,
	// raised as idle rooms are forgotten. A room is forgotten only when
	// done at or below pruneFloor, the highest position seen one prune
	// earlier, so an advance would have to arrive a whole interval late
	// for a forgotten room's events to be missed.
	floor, pruneFloor, seen persistence.StreamPos
	lastPrune               time.Time
}

func (a *pusherActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *messages.RoomAdvanced:
		pos := persistence.StreamPos(msg.StreamPos)
		a.seen = max(a.seen, pos)
		r := a.rooms[msg.RoomId]
		if r == nil {
			r = &pushRoom{done: a.floor, want: a.floor}
			a.rooms[msg.RoomId] = r
		}
		r.want = max(r.want, pos)
		a.plan(ctx, msg.RoomId, r)
	case *roomPlanned:
		if r := a.rooms[msg.roomID]; r != nil {
			r.planning, r.done = false, max(r.done, msg.upTo)
			a.plan(ctx, msg.roomID, r)
		}
		a.prune()
	case *actor.Stopping:
		a.opts.Log.Debug().Int("rooms", len(a.rooms)).Msg("pusher stopping")
	}
}

// plan starts planning the room's events from where its last plan ended,
// unless a plan of it is running (its end starts the next).
func (a *pusherActor) plan(ctx actor.Context, roomID string, r *pushRoom) {
	if r.planning || r.want <= r.done {
		return
	}
	r.planning = true
	from, to := r.done, r.want
	system, self := ctx.ActorSystem(), ctx.Self()
	go func() {
		defer system.Root.Send(self, &roomPlanned{roomID: roomID, upTo: to})
		// A bug in planning costs these pushes, not the process (this
		// goroutine is outside the actor's supervision).
		defer func() {
			if v := recover(); v != nil {
				a.opts.Log.Error().Interface("panic", v).Str("room_id", roomID).Msg("planning push notifications panicked")
			}
		}()
		pushes, err := a.opts.Planner.PlanPushes(a.ctx, roomID, from, to)
		if err != nil {
			// Not retried: a plan that failed (storage down) is dropped
			// rather than holding up the room's later events.
			a.opts.Log.Error().Err(err).Str("room_id", roomID).Int64("from", int64(from)).Int64("to", int64(to)).
				Msg("could not plan push notifications; these events are not pushed")
			return
		}
		for _, p := range pushes {
			a.gateway.deliver(a.ctx, p)
		}
	}()
}

func (a *pusherActor) prune() {
	if time.Since(a.lastPrune) < pruneInterval {
		return
	}
	for id, r := range a.rooms {
		if !r.planning && r.want <= r.done && r.done <= a.pruneFloor {
			delete(a.rooms, id)
		}
	}
	a.floor = max(a.floor, a.pruneFloor)
	a.pruneFloor, a.lastPrune = a.seen, time.Now()
}
