package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/persistence"
)

// The outbound side of federation: one sender actor per remote server
// (destination) sends what the persistent queue (persistence.FederationQueue)
// holds for it, one transaction (PUT /_matrix/federation/v1/send/{txnId})
// at a time, oldest first, deleting the rows once the destination answered
// 200. A failed transaction is sent again, unchanged, after an exponential
// backoff; rows are only ever deleted once sent, so nothing queued is lost
// to a failure or a restart (Start catches up on what is queued).

// TransactionSender sends one transaction to t.Destination. The outbound
// Client implements it; tests drive the senders with their own.
type TransactionSender interface {
	SendTransaction(ctx context.Context, t gomatrixserverlib.Transaction) (fclient.RespSend, error)
}

// SendersOptions configures Senders.
type SendersOptions struct {
	// Origin is this server's name, the transactions' origin.
	Origin spec.ServerName
	Queue  persistence.FederationQueue
	Client TransactionSender
	// RetryMin is the wait after a destination's first failed transaction,
	// doubled after each further failure up to RetryMax (defaults 2s, 1h).
	RetryMin, RetryMax time.Duration
	// IdleTimeout is how long a sender with nothing to send lives on
	// before it stops (default one minute); the next Wake spawns another.
	IdleTimeout time.Duration
	// Metrics measures the senders (kind destination); nil measures nothing.
	Metrics *metrics.Actors
	Log     zerolog.Logger
}

// Default retry bounds and idle timeout of the senders.
const (
	DefaultRetryMin    = 2 * time.Second
	DefaultRetryMax    = time.Hour
	DefaultIdleTimeout = time.Minute
)

// Senders owns the per-destination sender actors of this node. A nil
// *Senders (federation off) ignores Wake, BackOnline, QueueEDU and Stop.
type Senders struct {
	system *actor.ActorSystem
	opts   SendersOptions
	ctx    context.Context
	cancel context.CancelFunc
	// txnPrefix and txnCounter make transaction IDs unique per destination
	// across restarts: the start time in milliseconds, then a counter.
	txnPrefix  string
	txnCounter atomic.Uint64
	// inflight counts the goroutines sending a transaction (Stop waits).
	inflight sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	senders map[string]*senderEntry
}

// senderEntry is a destination's live sender. wakes counts the wakes sent
// to it: a sender may only stop once it has handled them all (retire), so
// that a wake never lands in a mailbox that is going away.
type senderEntry struct {
	pid   *actor.PID
	wakes uint64
}

// NewSenders returns the senders of a node; Start them to catch up on
// what the queue holds.
func NewSenders(system *actor.ActorSystem, opts SendersOptions) *Senders {
	if opts.RetryMin <= 0 {
		opts.RetryMin = DefaultRetryMin
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Senders{
		system: system, opts: opts, ctx: ctx, cancel: cancel,
		txnPrefix: strconv.FormatInt(time.Now().UnixMilli(), 10),
		senders:   map[string]*senderEntry{},
	}
}

// Start spawns a sender for each destination that has rows queued, so that
// what was queued before a restart is sent.
func (s *Senders) Start(ctx context.Context) error {
	ds, err := s.opts.Queue.QueuedDestinations(ctx)
	if err != nil {
		return fmt.Errorf("federation.Senders.Start: %w", err)
	}
	s.Wake(ds...)
	return nil
}

// Wake tells the destinations' senders that rows were queued for them,
// spawning those that are not running. Call it after the rows are
// committed (after CommitEvents or QueueEDU returned). This server and ""
// are ignored.
func (s *Senders) Wake(destinations ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	for _, d := range destinations {
		if d == "" || spec.ServerName(d) == s.opts.Origin {
			continue
		}
		e := s.senders[d]
		if e == nil {
			e = &senderEntry{pid: s.spawn(d)}
			s.senders[d] = e
		}
		e.wakes++
		s.system.Root.Send(e.pid, &queueChanged{wake: e.wakes})
	}
}

// QueueEDU stores an EDU for each destination (this server excepted) and
// wakes their senders.
func (s *Senders) QueueEDU(ctx context.Context, destinations []string, eduType string, content []byte) error {
	if s == nil {
		return nil // federation is off: there is nobody to send to
	}
	destinations = slices.DeleteFunc(slices.Clone(destinations), func(d string) bool { return spec.ServerName(d) == s.opts.Origin })
	if len(destinations) == 0 {
		return nil
	}
	if err := s.opts.Queue.QueueEDU(ctx, destinations, eduType, content); err != nil {
		return fmt.Errorf("federation.Senders.QueueEDU: %w", err)
	}
	s.Wake(destinations...)
	return nil
}

// BackOnline tells the destination's sender, if it has one, that the
// destination answers (a request from it was just verified): a sender
// waiting out a backoff sends at once, and its backoff starts over.
func (s *Senders) BackOnline(destination string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.senders[destination]; e != nil && !s.stopped {
		s.system.Root.Send(e.pid, &destinationBackOnline{})
	}
}

// Stop stops the senders, abandoning the transactions in flight (their
// rows stay queued for the next start), and waits for them to end.
func (s *Senders) Stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.stopped = true
	pids := make([]*actor.PID, 0, len(s.senders))
	for _, e := range s.senders {
		pids = append(pids, e.pid)
	}
	clear(s.senders)
	s.mu.Unlock()
	s.cancel()
	for _, pid := range pids {
		_ = s.system.Root.StopFuture(pid).Wait()
	}
	s.inflight.Wait()
}

// Active returns how many senders are alive.
func (s *Senders) Active() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.senders)
}

// spawn starts a destination's sender; s.mu held.
func (s *Senders) spawn(destination string) *actor.PID {
	var measured *metrics.Activation
	if s.opts.Metrics != nil {
		measured = s.opts.Metrics.NewActivation(metrics.KindDestination, "")
	}
	log := s.opts.Log.With().Str("destination", destination).Logger()
	return s.system.Root.Spawn(measured.Props(func() actor.Actor {
		return &destinationSender{s: s, destination: destination, log: log}
	}))
}

// wakesOf is how many wakes the destination's sender pid was sent.
func (s *Senders) wakesOf(destination string, pid *actor.PID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.senders[destination]; e != nil && e.pid.Equal(pid) {
		return e.wakes
	}
	return 0
}

// retire is asked by an idle sender that has handled wakes wakes: true
// (and the sender is forgotten) when no wake is on its way to it.
func (s *Senders) retire(destination string, pid *actor.PID, wakes uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.senders[destination]
	if e == nil || !e.pid.Equal(pid) {
		return true // not the live sender any more
	}
	if e.wakes != wakes {
		return false
	}
	delete(s.senders, destination)
	return true
}

func (s *Senders) nextTxnID() gomatrixserverlib.TransactionID {
	return gomatrixserverlib.TransactionID(s.txnPrefix + "." + strconv.FormatUint(s.txnCounter.Add(1), 10))
}

// Messages of a sender. All are local: a destination's sender lives on
// the node whose rooms queued for it.
type (
	// queueChanged: rows were queued; wake is the wake's number.
	queueChanged struct{ wake uint64 }
	// destinationBackOnline: the destination answers; stop backing off.
	destinationBackOnline struct{}
	// retryDue: the backoff armed with timer generation gen is over.
	retryDue struct{ gen uint64 }
	// idleCheck: the sender has been idle since the timer generation gen.
	idleCheck struct{ gen uint64 }
	// transactionDone: a send goroutine ended.
	transactionDone struct {
		// txn is the transaction tried; nil when nothing was queued (or
		// the read failed).
		txn *outboundTxn
		// sent: the destination took txn (err may still say the rows
		// could not be deleted).
		sent bool
		err  error
	}
)

// outboundTxn is a transaction and the queue rows it carries.
type outboundTxn struct {
	txn  gomatrixserverlib.Transaction
	seqs []int64
}

// destinationSender sends one destination's queue. At most one send
// goroutine runs at a time; everything else happens in Receive.
type destinationSender struct {
	s           *Senders
	destination string
	log         zerolog.Logger

	wakes   uint64 // wakes handled (or known at start)
	dirty   bool   // rows may have been queued since the last read began
	sending bool   // a send goroutine runs
	// failed is the transaction that failed, sent again unchanged when
	// the backoff ends, so that the destination can recognise it.
	failed  *outboundTxn
	backoff time.Duration // the last wait; 0 after a success
	waiting bool          // waiting out backoff
	// timer is the backoff or idle timer; timerGen tells a stale firing.
	timer    *time.Timer
	timerGen uint64
}

func (a *destinationSender) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		// Whatever was queued before the wakes sent so far is read below.
		a.wakes = a.s.wakesOf(a.destination, ctx.Self())
		a.dirty = true
		a.next(ctx)
	case *queueChanged:
		a.wakes = max(a.wakes, msg.wake)
		a.dirty = true
		a.next(ctx)
	case *destinationBackOnline:
		a.backoff = 0
		if a.waiting {
			a.log.Debug().Msg("destination back online: retrying now")
			a.waiting = false
			a.stopTimer()
			a.next(ctx)
		}
	case *retryDue:
		if msg.gen == a.timerGen && a.waiting {
			a.waiting = false
			a.next(ctx)
		}
	case *transactionDone:
		a.done(ctx, msg)
	case *idleCheck:
		if msg.gen == a.timerGen && a.idle() && a.s.retire(a.destination, ctx.Self(), a.wakes) {
			ctx.Stop(ctx.Self())
		}
	case *actor.Stopping:
		a.stopTimer()
	}
}

func (a *destinationSender) idle() bool {
	return !a.sending && !a.waiting && !a.dirty && a.failed == nil
}

// next starts the next send, unless one runs or a backoff is under way;
// with nothing to do it arms the idle timer.
func (a *destinationSender) next(ctx actor.Context) {
	switch {
	case a.sending || a.waiting:
		return
	case a.failed != nil:
		a.send(ctx, a.failed)
	case a.dirty:
		a.dirty = false
		a.send(ctx, nil)
	default:
		a.arm(ctx, a.s.opts.IdleTimeout, func(gen uint64) any { return &idleCheck{gen: gen} })
	}
}

// done takes a send goroutine's outcome.
func (a *destinationSender) done(ctx actor.Context, msg *transactionDone) {
	a.sending = false
	switch {
	case msg.err == nil && msg.txn == nil:
		// Nothing was queued.
	case msg.err == nil:
		a.failed, a.backoff = nil, 0
		a.dirty = true // read on while rows remain
	default:
		if msg.sent {
			a.failed = nil // delivered: the rows are read (and sent) again
			a.dirty = true
		} else if msg.txn != nil {
			a.failed = msg.txn
		} else {
			a.dirty = true // the read failed: read again
		}
		a.backoff = min(max(a.backoff*2, a.s.opts.RetryMin), a.s.opts.RetryMax)
		wait := max(a.backoff, min(retryAfter(msg.err), a.s.opts.RetryMax))
		ev := a.log.Warn().Err(msg.err).Dur("retry_in", wait)
		if msg.txn != nil {
			ev = ev.Str("txn_id", string(msg.txn.txn.TransactionID)).Int("pdus", len(msg.txn.txn.PDUs)).Int("edus", len(msg.txn.txn.EDUs))
		}
		ev.Msg("federation transaction failed; retrying later")
		a.waiting = true
		a.arm(ctx, wait, func(gen uint64) any { return &retryDue{gen: gen} })
		return
	}
	a.next(ctx)
}

// arm (re)starts the sender's timer: after d, msg(gen) comes to the sender.
func (a *destinationSender) arm(ctx actor.Context, d time.Duration, msg func(gen uint64) any) {
	a.stopTimer()
	a.timerGen++
	gen, system, self := a.timerGen, ctx.ActorSystem(), ctx.Self()
	a.timer = time.AfterFunc(d, func() { system.Root.Send(self, msg(gen)) })
}

func (a *destinationSender) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

// send sends txn, or (nil) the oldest rows queued, in a goroutine that
// tells the sender how it went.
func (a *destinationSender) send(ctx actor.Context, txn *outboundTxn) {
	a.sending = true
	a.stopTimer()
	s, destination, log := a.s, a.destination, a.log
	system, self := ctx.ActorSystem(), ctx.Self()
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		done := &transactionDone{txn: txn}
		defer func() {
			// A bug here costs a retry, not the process (this goroutine
			// is outside the actor's supervision).
			if v := recover(); v != nil {
				log.Error().Interface("panic", v).Msg("sending a federation transaction panicked")
				done.err = fmt.Errorf("panic: %v", v)
			}
			system.Root.Send(self, done)
		}()
		if txn == nil {
			var err error
			if txn, err = s.read(s.ctx, destination); err != nil || txn == nil {
				done.err = err
				return
			}
			done.txn = txn
		}
		res, err := s.opts.Client.SendTransaction(s.ctx, txn.txn)
		if err != nil {
			done.err = err
			return
		}
		done.sent = true
		for id, r := range res.PDUs {
			if r.Error != "" {
				// The spec: the destination's verdict on a PDU is final.
				log.Info().Str("event_id", id).Str("error", r.Error).Msg("destination refused an event")
			}
		}
		if err := s.opts.Queue.DeleteFederationQueued(s.ctx, destination, txn.seqs); err != nil {
			done.err = err
		}
	}()
}

// read builds a transaction of the oldest rows queued for destination, or
// returns nil when none is.
func (s *Senders) read(ctx context.Context, destination string) (*outboundTxn, error) {
	pdus, edus, err := s.opts.Queue.PendingFederation(ctx, destination, persistence.MaxTransactionPDUs, persistence.MaxTransactionEDUs)
	if err != nil {
		return nil, err
	}
	if len(pdus) == 0 && len(edus) == 0 {
		return nil, nil
	}
	t := &outboundTxn{txn: gomatrixserverlib.Transaction{
		TransactionID:  s.nextTxnID(),
		Origin:         s.opts.Origin,
		Destination:    spec.ServerName(destination),
		OriginServerTS: spec.AsTimestamp(time.Now()),
		PDUs:           make([]json.RawMessage, 0, len(pdus)), // "pdus" is required, even empty
	}}
	for _, p := range pdus {
		t.txn.PDUs = append(t.txn.PDUs, json.RawMessage(p.JSON))
		t.seqs = append(t.seqs, p.Seq)
	}
	for _, e := range edus {
		t.txn.EDUs = append(t.txn.EDUs, gomatrixserverlib.EDU{
			Type: e.Type, Origin: string(s.opts.Origin), Destination: destination, Content: spec.RawJSON(e.Content),
		})
		t.seqs = append(t.seqs, e.Seq)
	}
	return t, nil
}

// retryAfter is the wait a 429 answer asks for (retry_after_ms), or 0.
func retryAfter(err error) time.Duration {
	var httpErr gomatrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Code != 429 {
		return 0
	}
	var body struct {
		RetryAfterMS int64 `json:"retry_after_ms"`
	}
	if json.Unmarshal(httpErr.Contents, &body) != nil || body.RetryAfterMS <= 0 {
		return 0
	}
	return time.Duration(body.RetryAfterMS) * time.Millisecond
}

var _ TransactionSender = (*Client)(nil)
