package rooms

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/persistence"
)

// Deps is what every room actor of a node shares.
type Deps struct {
	Store  persistence.RoomStore
	Signer *Signer
	// Publish tells the node's sync notifier that a room advanced.
	Publish func(*messages.RoomAdvanced)
	// WakeSenders tells the federation senders of these servers that a
	// commit queued events for them (nil without federation).
	WakeSenders func(destinations ...string)
	// Passivate asks the router whether this activation may stop now (no
	// request is on its way to it); true means the router forgot it.
	Passivate func(roomID string, self *actor.PID) bool
	// IdleTimeout is how long an idle activation lives; 0 means forever.
	IdleTimeout time.Duration
	// StoreTimeout bounds each storage call.
	StoreTimeout time.Duration
	Log          zerolog.Logger
	Now          func() time.Time
}

// errRoomMoved answers every command of an activation fenced off by a
// newer one; the router retries such commands on the live activation.
var errRoomMoved = &Error{Status: http.StatusServiceUnavailable, ErrCode: "M_UNKNOWN",
	Message: "the room moved to another activation; retry the request", Moved: true}

// retireInterval is how often a fenced-off activation asks the router
// whether the requests still on their way to it are answered.
const retireInterval = 20 * time.Millisecond

// maxRememberedTxns bounds the in-memory idempotency cache; storage keeps
// every mapping, so forgetting only costs a read.
const maxRememberedTxns = 4096

// Actor serialises one room's commands. It owns the room's history: no
// other code writes it.
type Actor struct {
	roomID string
	deps   *Deps
	log    zerolog.Logger
	room   *Room // nil until loaded, or when the room does not exist
	txns   map[persistence.TxnKey]string

	lastActive  time.Time
	idleTimer   *time.Timer
	retireTimer *time.Timer

	// pending are the sends of the batch being gathered (see batch.go).
	pending     []pendingSend
	flushQueued bool
	// moved is set when a commit lost to a newer activation: from then on
	// this one answers every command with errRoomMoved (nothing is built
	// on a head it no longer owns) and stops as soon as the router lets it.
	moved bool

	// stats are this activation's figures (nil when not measured).
	stats *metrics.Activation
}

// Measure implements metrics.Measured: the actor records its batches,
// commits and room head on its activation's figures.
func (a *Actor) Measure(s *metrics.Activation) { a.stats = s }

// publishHead tells the metrics what the room looks like now.
func (a *Actor) publishHead() {
	if a.stats == nil || a.room == nil {
		return
	}
	r := a.room
	a.stats.PublishRoom(metrics.RoomHead{
		Epoch: r.Epoch, Depth: r.Depth, JoinedMembers: r.Members.Joined(),
		ForwardExtremities: len(r.Extremities), StateEvents: len(r.State),
	})
}

// idleCheck is the actor's own reminder to passivate when idle. (protoactor's
// SetReceiveTimeout is not used: its timer goroutine writes the actor
// context unsynchronised, which the race detector reports.)
type idleCheck struct{}

// NewActor returns the producer of a room's actor; each activation (and
// each restart after a panic) starts from what storage holds.
func NewActor(roomID string, deps *Deps) actor.Producer {
	return func() actor.Actor {
		return &Actor{
			roomID: roomID,
			deps:   deps,
			log:    deps.Log.With().Str("room_id", roomID).Logger(),
			txns:   map[persistence.TxnKey]string{},
		}
	}
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.lastActive = time.Now()
		a.scheduleIdleCheck(ctx, a.deps.IdleTimeout)
		if err := a.load(); err != nil && !errors.Is(err, persistence.ErrNotFound) {
			a.log.Error().Err(err).Msg("activation could not load the room; will retry on the next command")
		}
	case *actor.Stopping, *actor.Restarting:
		for _, t := range []*time.Timer{a.idleTimer, a.retireTimer} {
			if t != nil {
				t.Stop()
			}
		}
	case *retireCheck:
		a.retire(ctx)
	case *idleCheck:
		idle := time.Since(a.lastActive)
		if idle < a.deps.IdleTimeout {
			a.scheduleIdleCheck(ctx, a.deps.IdleTimeout-idle)
			return
		}
		if !a.passivate(ctx) {
			a.scheduleIdleCheck(ctx, a.deps.IdleTimeout)
		}
	case *messages.SendEvent:
		a.lastActive = time.Now()
		a.enqueue(ctx, msg)
	case *flushBatch:
		a.flushQueued = false
		a.flush(ctx)
	case *messages.InputEvents:
		a.lastActive = time.Now()
		a.flush(ctx)
		a.respond(ctx, func() proto.Message { return a.input(msg) },
			func(e *messages.Error) proto.Message { return &messages.InputEventsReply{Error: e} })
	case *messages.JoinRemoteRoom:
		a.lastActive = time.Now()
		a.flush(ctx)
		a.respond(ctx, func() proto.Message { return a.joinRemote(msg) },
			func(e *messages.Error) proto.Message { return &messages.JoinRemoteRoomReply{Error: e} })
	case *messages.MakeMembership:
		a.lastActive = time.Now()
		a.flush(ctx)
		a.respond(ctx, func() proto.Message { return a.makeMembership(msg) },
			func(e *messages.Error) proto.Message { return &messages.MakeMembershipReply{Error: e} })
	case *messages.BuildEvent:
		a.lastActive = time.Now()
		a.flush(ctx)
		a.respond(ctx, func() proto.Message { return a.buildEvent(msg) },
			func(e *messages.Error) proto.Message { return &messages.BuildEventReply{Error: e} })
	case *messages.StoreRemoteMembership:
		a.lastActive = time.Now()
		a.flush(ctx)
		a.respond(ctx, func() proto.Message { return a.storeRemoteMembership(msg) },
			func(e *messages.Error) proto.Message { return &messages.StoreRemoteMembershipReply{Error: e} })
	case *messages.InspectRoom:
		a.respond(ctx, func() proto.Message { return a.inspect() },
			func(e *messages.Error) proto.Message { return &messages.RoomInspection{RoomId: a.roomID, Error: e} })
	case *messages.InjectFault:
		a.injectFault(ctx, msg)
	case *messages.CreateRoom:
		a.lastActive = time.Now()
		a.flush(ctx) // commands keep their mailbox order
		a.respond(ctx, func() proto.Message { return a.create(msg) },
			func(e *messages.Error) proto.Message { return &messages.CreateRoomReply{Error: e} })
	}
}

// respond answers the command; if handling panics it first answers with an
// error (protoactor drops the panicking message on restart, so the caller
// would otherwise wait until its timeout), then re-panics so the
// supervisor restarts the actor, which reloads the room from storage.
func (a *Actor) respond(ctx actor.Context, handle func() proto.Message, failed func(*messages.Error) proto.Message) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error().Interface("panic", p).Msg("room actor panicked; restarting from storage")
			ctx.Respond(failed(internal("the room failed while handling this request").Proto()))
			panic(p)
		}
	}()
	ctx.Respond(handle())
	switch {
	case a.moved:
		a.retire(ctx)
	case a.room == nil:
		// Nothing lives here (an unknown room): do not keep an actor for it.
		a.passivate(ctx)
	}
}

// passivate stops the activation if the router agrees (no request is on
// its way here) and reports whether it did.
func (a *Actor) passivate(ctx actor.Context) bool {
	if a.deps.Passivate == nil || a.deps.Passivate(a.roomID, ctx.Self()) {
		ctx.Stop(ctx.Self())
		return true
	}
	return false
}

// retireCheck is a fenced-off actor's reminder to try stopping again.
type retireCheck struct{}

// retire stops a fenced-off activation once the router has no request on
// its way to it, checking again shortly until then.
func (a *Actor) retire(ctx actor.Context) {
	if a.passivate(ctx) {
		return
	}
	system, self := ctx.ActorSystem(), ctx.Self()
	a.retireTimer = time.AfterFunc(retireInterval, func() { system.Root.Send(self, &retireCheck{}) })
}

// scheduleIdleCheck reminds the actor, through its own mailbox, to check
// for idleness after d.
func (a *Actor) scheduleIdleCheck(ctx actor.Context, d time.Duration) {
	if a.deps.IdleTimeout <= 0 {
		return
	}
	system, self := ctx.ActorSystem(), ctx.Self()
	a.idleTimer = time.AfterFunc(d, func() { system.Root.Send(self, &idleCheck{}) })
}

// defaultStoreTimeout bounds a storage call when Deps.StoreTimeout is 0.
const defaultStoreTimeout = 30 * time.Second

func (a *Actor) storeContext() (context.Context, context.CancelFunc) {
	d := a.deps.StoreTimeout
	if d == 0 {
		d = defaultStoreTimeout
	}
	return context.WithTimeout(context.Background(), d)
}

func (a *Actor) load() error {
	ctx, cancel := a.storeContext()
	defer cancel()
	r, err := LoadRoom(ctx, a.deps.Store, a.roomID)
	if err != nil {
		a.room = nil
		return err
	}
	a.room = r
	a.publishHead()
	return nil
}

// ensureLoaded loads the room if an earlier attempt failed; errors become
// the reply.
func (a *Actor) ensureLoaded() *Error {
	if a.room != nil {
		return nil
	}
	err := a.load()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, persistence.ErrNotFound):
		return notFound("unknown room %s", a.roomID)
	default:
		a.log.Error().Err(err).Msg("loading room")
		return unavailable("the room is temporarily unavailable")
	}
}

func (a *Actor) create(msg *messages.CreateRoom) *messages.CreateRoomReply {
	if msg.RoomId != a.roomID || len(msg.Events) == 0 {
		return &messages.CreateRoomReply{Error: badJSON("malformed create request").Proto()}
	}
	if a.moved {
		return &messages.CreateRoomReply{Error: errRoomMoved.Proto()}
	}
	if a.room != nil {
		return &messages.CreateRoomReply{Error: (&Error{Status: 400, ErrCode: "M_ROOM_IN_USE", Message: "room already exists"}).Proto()}
	}
	r, err := NewRoom(a.roomID, msg.RoomVersion)
	if err != nil {
		return &messages.CreateRoomReply{Error: asError(err, a.log).Proto()}
	}
	now := a.deps.Now()
	built := make([]gomatrixserverlib.PDU, 0, len(msg.Events))
	for _, c := range msg.Events {
		ev, err := r.Build(c, now, a.deps.Signer)
		if err != nil {
			return &messages.CreateRoomReply{Error: asError(err, a.log).Proto()}
		}
		r.Apply(ev)
		built = append(built, ev)
	}
	res, e := a.commit(r, &persistence.NewRoom{RoomID: a.roomID, Version: msg.RoomVersion}, built, nil, nil)
	if e != nil {
		return &messages.CreateRoomReply{Error: e.Proto()}
	}
	ids := make([]string, len(built))
	for i, ev := range built {
		ids[i] = ev.EventID()
	}
	return &messages.CreateRoomReply{EventIds: ids, StreamPos: int64(res.LastStream)}
}

// commit persists events already built and applied on r, makes r the live
// room and publishes the advance. On failure the live room is dropped and
// reloaded from storage on the next command, so memory never runs ahead of
// what is durable.
func (a *Actor) commit(r *Room, newRoom *persistence.NewRoom, events []gomatrixserverlib.PDU, txns []*persistence.TxnKey, dests [][]string) (*persistence.CommitResult, *Error) {
	req := persistence.CommitRequest{NewRoom: newRoom, Events: make([]persistence.NewEvent, len(events))}
	for i, ev := range events {
		var txn *persistence.TxnKey
		if i < len(txns) {
			txn = txns[i]
		}
		req.Events[i] = newEventRecord(ev, txn)
		if i < len(dests) {
			req.Events[i].Destinations = dests[i]
		}
	}
	return a.commitRequest(r, req)
}

// commitRequest completes req with r's head (the fence, the state it
// builds on, the extremities and depth r has reached), stores it and, on
// success, makes r the live room and publishes the advance.
func (a *Actor) commitRequest(r *Room, req persistence.CommitRequest) (*persistence.CommitResult, *Error) {
	if req.NewRoom == nil {
		req.RoomNID, req.Epoch, req.Snapshot, req.Blocks = r.NID, r.Epoch, r.Snapshot, r.Blocks
	}
	req.Extremities, req.Depth = append([]string{}, r.Extremities...), r.Depth
	var users []string
	for _, ev := range req.Events {
		if ev.Membership != "" && !ev.Outlier {
			users = append(users, *ev.StateKey)
		}
	}
	for _, ref := range req.StateAfter {
		if ref.Membership != "" {
			users = append(users, ref.StateKey)
		}
	}

	ctx, cancel := a.storeContext()
	defer cancel()
	start := time.Now()
	res, err := a.deps.Store.CommitEvents(ctx, req)
	if err != nil {
		a.room = nil
		switch {
		case errors.Is(err, persistence.ErrRoomExists):
			return nil, &Error{Status: 400, ErrCode: "M_ROOM_IN_USE", Message: "room already exists"}
		case errors.Is(err, persistence.ErrFenced):
			a.log.Warn().Msg("another activation claimed this room; this one stops and its commands go to the live one")
			a.moved = true
			return nil, errRoomMoved
		default:
			a.log.Error().Err(err).Msg("commit failed")
			return nil, unavailable("could not store the event; retry the request")
		}
	}
	r.NID, r.Epoch, r.Snapshot, r.Blocks = res.RoomNID, res.Epoch, res.Snapshot, res.Blocks
	a.room = r
	a.stats.ObserveCommit(len(req.Events), time.Since(start))
	a.publishHead()
	if a.deps.Publish != nil && res.LastStream > 0 {
		a.deps.Publish(&messages.RoomAdvanced{RoomId: a.roomID, StreamPos: int64(res.LastStream), Users: users})
	}
	if a.deps.WakeSenders != nil {
		var dests []string
		for _, ev := range req.Events {
			dests = append(dests, ev.Destinations...)
		}
		if len(dests) > 0 {
			slices.Sort(dests)
			a.deps.WakeSenders(slices.Compact(dests)...)
		}
	}
	return res, nil
}

// destinations are the servers a new event of the room goes to: those
// with members joined before it, and the server of a member event's
// target (an invited or kicked user's), but never this one.
func (a *Actor) destinations(ev gomatrixserverlib.PDU, skip ...string) []string {
	servers := a.room.Members.Servers()
	if ev.Type() == spec.MRoomMember && ev.StateKey() != nil {
		servers = append(servers, serverOf(*ev.StateKey()))
	}
	skip = append(skip, string(a.deps.Signer.ServerName))
	servers = slices.DeleteFunc(servers, func(s string) bool { return slices.Contains(skip, s) })
	slices.Sort(servers)
	return slices.Compact(servers)
}

func newEventRecord(ev gomatrixserverlib.PDU, txn *persistence.TxnKey) persistence.NewEvent {
	ne := persistence.NewEvent{
		EventID:        ev.EventID(),
		JSON:           ev.JSON(),
		Type:           ev.Type(),
		StateKey:       ev.StateKey(),
		Sender:         string(ev.SenderID()),
		Depth:          ev.Depth(),
		OriginServerTS: int64(ev.OriginServerTS()),
		Txn:            txn,
	}
	if ev.Type() == spec.MRoomMember {
		ne.Membership, _ = ev.Membership()
	}
	if ev.Type() == eventTypeRedaction {
		ne.Redacts = redactsOf(ev) // the actor refused those it would not apply
	}
	return ne
}

func (a *Actor) lookupTxn(key persistence.TxnKey) (string, *Error) {
	if id, ok := a.txns[key]; ok {
		return id, nil
	}
	ctx, cancel := a.storeContext()
	defer cancel()
	id, err := a.deps.Store.LookupTxn(ctx, key)
	switch {
	case err == nil:
		a.rememberTxn(key, id)
		return id, nil
	case errors.Is(err, persistence.ErrNotFound):
		return "", nil
	default:
		a.log.Error().Err(err).Msg("txn lookup failed")
		return "", unavailable("could not check the transaction ID; retry the request")
	}
}

func (a *Actor) rememberTxn(key persistence.TxnKey, eventID string) {
	if len(a.txns) >= maxRememberedTxns {
		clear(a.txns)
	}
	a.txns[key] = eventID
}

// asError keeps refusals as they are and hides anything else behind M_UNKNOWN.
func asError(err error, log zerolog.Logger) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	log.Error().Err(err).Msg("unexpected error")
	return internal("unexpected error")
}
