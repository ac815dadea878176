package rooms

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/matrix-org/gomatrixserverlib"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Group commit. A SendEvent is not handled on arrival: it joins the pending
// batch, and the first one of a batch posts a flushBatch to the actor's own
// mailbox. Every send already queued behind it joins the same batch, so
// while one commit runs the next batch gathers, and under load one
// transaction carries many events. Each command still gets its own event
// and reply, in mailbox order, and a refused command does not sink the
// others.

// MaxBatch bounds the events of one transaction.
const MaxBatch = 100

type pendingSend struct {
	msg    *messages.SendEvent
	sender *actor.PID // the requester to answer
}

// flushBatch tells the actor to commit its pending batch.
type flushBatch struct{}

func (a *Actor) enqueue(ctx actor.Context, msg *messages.SendEvent) {
	a.pending = append(a.pending, pendingSend{msg: msg, sender: ctx.Sender()})
	switch {
	case len(a.pending) >= MaxBatch:
		a.flush(ctx)
	case !a.flushQueued:
		a.flushQueued = true
		ctx.Send(ctx.Self(), &flushBatch{})
	}
}

// flush commits the pending batch and answers each of its commands. A
// panic answers them all with an error before the supervisor restarts the
// actor (see respond).
func (a *Actor) flush(ctx actor.Context) {
	batch := a.pending
	a.pending = nil
	if len(batch) == 0 {
		return
	}
	a.stats.ObserveBatch(len(batch))
	answer := func(p pendingSend, reply *messages.SendEventReply) {
		if p.sender != nil {
			ctx.Send(p.sender, reply)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			a.log.Error().Interface("panic", p).Int("batch", len(batch)).Msg("room actor panicked; restarting from storage")
			failed := &messages.SendEventReply{Error: internal("the room failed while handling this request").Proto()}
			for _, ps := range batch {
				answer(ps, failed)
			}
			panic(p)
		}
	}()
	replies := a.sendBatch(batch)
	for i, reply := range replies {
		answer(batch[i], reply)
	}
	switch {
	case a.moved:
		a.retire(ctx)
	case a.room == nil:
		a.passivate(ctx) // an unknown room: keep no actor for it
	}
}

// sendBatch builds, authorises and applies each send in order, commits
// those that passed in one transaction and returns one reply per send.
func (a *Actor) sendBatch(batch []pendingSend) []*messages.SendEventReply {
	replies := make([]*messages.SendEventReply, len(batch))
	if a.moved {
		for i := range replies {
			replies[i] = &messages.SendEventReply{Error: errRoomMoved.Proto()}
		}
		return replies
	}
	if e := a.ensureLoaded(); e != nil {
		for i := range replies {
			replies[i] = &messages.SendEventReply{Error: e.Proto()}
		}
		return replies
	}
	var (
		built  []gomatrixserverlib.PDU
		txns   []*persistence.TxnKey
		owners []int                          // built[k] answers batch[owners[k]]
		inTxn  = map[persistence.TxnKey]int{} // txn → its index in built
		dups   = map[int]int{}                // batch index → index in built it repeats
		dests  [][]string                     // built[k] goes to dests[k]
	)
	now := a.deps.Now()
	for i, p := range batch {
		var txn *persistence.TxnKey
		if p.msg.TxnId != "" && p.msg.Event != nil {
			txn = &persistence.TxnKey{UserID: p.msg.Event.Sender, DeviceID: p.msg.DeviceId, TxnID: p.msg.TxnId}
			if k, ok := inTxn[*txn]; ok {
				dups[i] = k // a retry racing its original, in the same batch
				continue
			}
			id, e := a.lookupTxn(*txn)
			if e != nil {
				replies[i] = &messages.SendEventReply{Error: e.Proto()}
				continue
			}
			if id != "" {
				replies[i] = &messages.SendEventReply{EventId: id}
				continue
			}
		}
		content := p.msg.Event
		if content != nil && content.Type == eventTypeRedaction {
			var e *Error
			if content, e = normalizeRedaction(string(a.room.Version.Version()), content); e == nil {
				e = a.checkRedaction(content)
			}
			if e != nil {
				replies[i] = &messages.SendEventReply{Error: e.Proto()}
				continue
			}
		}
		ev, err := a.room.Build(content, now, a.deps.Signer)
		if err != nil {
			replies[i] = &messages.SendEventReply{Error: asError(err, a.log).Proto()}
			continue
		}
		dests = append(dests, a.destinations(ev))
		// The next send builds on this one; if the commit fails, the room
		// is reloaded from storage.
		a.room.Apply(ev)
		if txn != nil {
			inTxn[*txn] = len(built)
		}
		built, txns, owners = append(built, ev), append(txns, txn), append(owners, i)
	}
	if len(built) == 0 {
		return replies
	}
	res, e := a.commit(a.room, nil, built, txns, dests)
	for k, i := range owners {
		if e != nil {
			replies[i] = &messages.SendEventReply{Error: e.Proto()}
			continue
		}
		replies[i] = &messages.SendEventReply{EventId: built[k].EventID(), StreamPos: int64(res.StreamPos[k])}
		if txns[k] != nil {
			a.rememberTxn(*txns[k], built[k].EventID())
		}
	}
	for i, k := range dups {
		replies[i] = replies[owners[k]]
	}
	return replies
}
