package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/persistence"
)

// memQueue is an in-memory persistence.FederationQueue.
type memQueue struct {
	mu   sync.Mutex
	seq  int64
	rows []memRow
	// failReads makes that many PendingFederation calls fail.
	failReads int
}

type memRow struct {
	seq         int64
	destination string
	pdu         *persistence.QueuedPDU
	edu         *persistence.QueuedEDU
}

// queuePDU queues an event whose JSON names it, as a commit would.
func (q *memQueue) queuePDU(destination, eventID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	js := fmt.Sprintf(`{"event_id":%q}`, eventID)
	q.rows = append(q.rows, memRow{seq: q.seq, destination: destination,
		pdu: &persistence.QueuedPDU{Seq: q.seq, EventID: eventID, JSON: []byte(js)}})
}

func (q *memQueue) QueueEDU(_ context.Context, destinations []string, eduType string, content []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range destinations {
		q.seq++
		q.rows = append(q.rows, memRow{seq: q.seq, destination: d,
			edu: &persistence.QueuedEDU{Seq: q.seq, Type: eduType, Content: content}})
	}
	return nil
}

func (q *memQueue) PendingFederation(_ context.Context, destination string, maxPDUs, maxEDUs int) ([]persistence.QueuedPDU, []persistence.QueuedEDU, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failReads > 0 {
		q.failReads--
		return nil, nil, errors.New("the database is down")
	}
	var pdus []persistence.QueuedPDU
	var edus []persistence.QueuedEDU
	for _, r := range q.rows {
		switch {
		case r.destination != destination:
		case r.pdu != nil && len(pdus) < maxPDUs:
			pdus = append(pdus, *r.pdu)
		case r.edu != nil && len(edus) < maxEDUs:
			edus = append(edus, *r.edu)
		}
	}
	return pdus, edus, nil
}

func (q *memQueue) DeleteFederationQueued(_ context.Context, destination string, seqs []int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.rows = slices.DeleteFunc(q.rows, func(r memRow) bool { return r.destination == destination && slices.Contains(seqs, r.seq) })
	return nil
}

func (q *memQueue) QueuedDestinations(context.Context) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ds []string
	for _, r := range q.rows {
		if !slices.Contains(ds, r.destination) {
			ds = append(ds, r.destination)
		}
	}
	slices.Sort(ds)
	return ds, nil
}

func (q *memQueue) queued(destination string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, r := range q.rows {
		if r.destination == destination {
			n++
		}
	}
	return n
}

// fakeRemote answers transactions with answer (nil: 200), recording
// every attempt and the rows still queued when it came.
type fakeRemote struct {
	q        *memQueue
	answer   func(attempt int, t gomatrixserverlib.Transaction) (fclient.RespSend, error)
	attempts chan gomatrixserverlib.Transaction

	mu       sync.Mutex
	byDest   map[spec.ServerName]int
	accepted []gomatrixserverlib.Transaction
}

func newFakeRemote(q *memQueue) *fakeRemote {
	return &fakeRemote{q: q, attempts: make(chan gomatrixserverlib.Transaction, 10000), byDest: map[spec.ServerName]int{}}
}

func (f *fakeRemote) SendTransaction(ctx context.Context, t gomatrixserverlib.Transaction) (fclient.RespSend, error) {
	f.mu.Lock()
	f.byDest[t.Destination]++
	n := f.byDest[t.Destination]
	f.mu.Unlock()
	f.attempts <- t
	var res fclient.RespSend
	var err error
	if f.answer != nil {
		res, err = f.answer(n, t)
	}
	if err == nil {
		f.mu.Lock()
		f.accepted = append(f.accepted, t)
		f.mu.Unlock()
	}
	return res, err
}

func (f *fakeRemote) acceptedFor(destination string) []gomatrixserverlib.Transaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []gomatrixserverlib.Transaction
	for _, t := range f.accepted {
		if string(t.Destination) == destination {
			out = append(out, t)
		}
	}
	return out
}

// next waits for the next attempt.
func (f *fakeRemote) next(t *testing.T) gomatrixserverlib.Transaction {
	t.Helper()
	select {
	case txn := <-f.attempts:
		return txn
	case <-time.After(30 * time.Second):
		t.Fatal("no transaction was sent")
		return gomatrixserverlib.Transaction{}
	}
}

// eventually waits for cond, failing after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newTestSenders(t *testing.T, q *memQueue, client TransactionSender, opts SendersOptions) *Senders {
	t.Helper()
	system := actor.NewActorSystem()
	opts.Origin, opts.Queue, opts.Client, opts.Log = "origin.test", q, client, zerolog.Nop()
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = time.Millisecond, 4*time.Millisecond
	}
	s := NewSenders(system, opts)
	t.Cleanup(func() {
		s.Stop()
		system.Shutdown()
	})
	return s
}

func eventIDs(t *testing.T, txn gomatrixserverlib.Transaction) []string {
	t.Helper()
	var ids []string
	for _, raw := range txn.PDUs {
		var ev struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("PDU %s: %v", raw, err)
		}
		ids = append(ids, ev.EventID)
	}
	return ids
}

func TestSendersCatchUpInOrderedTransactionsOfAtMost50PDUsAnd100EDUs(t *testing.T) {
	q := &memQueue{}
	var wantPDUs, wantEDUs []string
	for i := range 230 {
		if i < 120 {
			id := fmt.Sprintf("$e%d", i)
			q.queuePDU("a.test", id)
			wantPDUs = append(wantPDUs, id)
		}
		content := fmt.Sprintf(`{"n":%d}`, i)
		noErr(t, q.QueueEDU(context.Background(), []string{"a.test"}, "m.test", []byte(content)))
		wantEDUs = append(wantEDUs, content)
	}
	q.queuePDU("b.test", "$b")
	remote := newFakeRemote(q)
	s := newTestSenders(t, q, remote, SendersOptions{})
	// Queued before the start, as after a restart: Start finds it.
	noErr(t, s.Start(context.Background()))
	eventually(t, "the queues to empty", func() bool { return q.queued("a.test") == 0 && q.queued("b.test") == 0 })

	txns := remote.acceptedFor("a.test")
	var gotPDUs, gotEDUs []string
	ids := map[gomatrixserverlib.TransactionID]bool{}
	for i, txn := range txns {
		if len(txn.PDUs) > 50 || len(txn.EDUs) > 100 {
			t.Fatalf("transaction %d carries %d PDUs and %d EDUs", i, len(txn.PDUs), len(txn.EDUs))
		}
		if txn.Origin != "origin.test" || txn.Destination != "a.test" || txn.OriginServerTS == 0 || txn.PDUs == nil {
			t.Fatalf("transaction %d: origin %q, destination %q, ts %d, PDUs %v", i, txn.Origin, txn.Destination, txn.OriginServerTS, txn.PDUs)
		}
		if ids[txn.TransactionID] || txn.TransactionID == "" {
			t.Fatalf("transaction ID %q repeats", txn.TransactionID)
		}
		ids[txn.TransactionID] = true
		gotPDUs = append(gotPDUs, eventIDs(t, txn)...)
		for _, e := range txn.EDUs {
			if e.Type != "m.test" || e.Origin != "origin.test" {
				t.Fatalf("EDU %+v", e)
			}
			gotEDUs = append(gotEDUs, string(e.Content))
		}
	}
	if !slices.Equal(gotPDUs, wantPDUs) || !slices.Equal(gotEDUs, wantEDUs) {
		t.Fatalf("a.test got PDUs %v and EDUs %v, want them all once in order", gotPDUs, gotEDUs)
	}
	// Full transactions while rows last: 50+100, 50+100, 20+30.
	if len(txns) != 3 || len(txns[0].PDUs) != 50 || len(txns[0].EDUs) != 100 {
		t.Fatalf("%d transactions, the first with %d PDUs and %d EDUs; want 3, full", len(txns), len(txns[0].PDUs), len(txns[0].EDUs))
	}
	if b := remote.acceptedFor("b.test"); len(b) != 1 || !slices.Equal(eventIDs(t, b[0]), []string{"$b"}) {
		t.Fatalf("b.test got %+v", b)
	}
}

func TestFailedTransactionsAreRetriedUnchangedAndLoseNothing(t *testing.T) {
	q := &memQueue{}
	remote := newFakeRemote(q)
	remote.answer = func(attempt int, txn gomatrixserverlib.Transaction) (fclient.RespSend, error) {
		if n := q.queued("a.test"); n < len(txn.PDUs)+len(txn.EDUs) {
			t.Errorf("attempt %d: only %d rows still queued for a transaction of %d", attempt, n, len(txn.PDUs)+len(txn.EDUs))
		}
		switch attempt {
		case 1:
			return fclient.RespSend{}, errors.New("connection refused")
		case 2:
			return fclient.RespSend{}, gomatrix.HTTPError{Code: 500}
		case 3:
			return fclient.RespSend{}, gomatrix.HTTPError{Code: 429, Contents: []byte(`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":3}`)}
		case 4:
			return fclient.RespSend{}, gomatrix.HTTPError{Code: 403}
		}
		// Per-PDU errors in a 200 are final: not sent again.
		return fclient.RespSend{PDUs: map[string]fclient.PDUResult{"$1": {Error: "bad event"}}}, nil
	}
	s := newTestSenders(t, q, remote, SendersOptions{})
	q.queuePDU("a.test", "$1")
	noErr(t, s.QueueEDU(context.Background(), []string{"a.test", "origin.test"}, "m.typing", []byte(`{"typing":true}`)))
	if q.queued("origin.test") != 0 {
		t.Fatal("an EDU was queued for this server")
	}
	first := remote.next(t)
	// Queued while the first transaction is retried: sent after it.
	q.queuePDU("a.test", "$2")
	s.Wake("a.test")
	for i := 2; i <= 5; i++ {
		again := remote.next(t)
		if again.TransactionID != first.TransactionID || !slices.Equal(eventIDs(t, again), []string{"$1"}) || len(again.EDUs) != 1 {
			t.Fatalf("attempt %d sent %s with %v, want %s again with $1 and the EDU", i, again.TransactionID, eventIDs(t, again), first.TransactionID)
		}
	}
	last := remote.next(t)
	if last.TransactionID == first.TransactionID || !slices.Equal(eventIDs(t, last), []string{"$2"}) {
		t.Fatalf("after the retries: %s with %v, want a new transaction with $2", last.TransactionID, eventIDs(t, last))
	}
	eventually(t, "the queue to empty", func() bool { return q.queued("a.test") == 0 })
}

func TestAFailedQueueReadIsRetried(t *testing.T) {
	q := &memQueue{failReads: 2}
	q.queuePDU("a.test", "$1")
	remote := newFakeRemote(q)
	s := newTestSenders(t, q, remote, SendersOptions{})
	s.Wake("a.test")
	if got := eventIDs(t, remote.next(t)); !slices.Equal(got, []string{"$1"}) {
		t.Fatalf("sent %v", got)
	}
	eventually(t, "the queue to empty", func() bool { return q.queued("a.test") == 0 })
}

func TestBackOnlineRetriesAtOnce(t *testing.T) {
	q := &memQueue{}
	remote := newFakeRemote(q)
	remote.answer = func(attempt int, _ gomatrixserverlib.Transaction) (fclient.RespSend, error) {
		if attempt == 1 {
			return fclient.RespSend{}, errors.New("no route to host")
		}
		return fclient.RespSend{}, nil
	}
	// A backoff longer than the test: only BackOnline can bring the retry.
	s := newTestSenders(t, q, remote, SendersOptions{RetryMin: time.Hour, RetryMax: time.Hour})
	q.queuePDU("a.test", "$1")
	s.Wake("a.test")
	first := remote.next(t)
	s.BackOnline("elsewhere.test") // no sender: nothing happens
	// BackOnline may arrive before the failure is taken in; it is sent
	// until the retry comes.
	var again gomatrixserverlib.Transaction
	for got := false; !got; {
		s.BackOnline("a.test")
		select {
		case again = <-remote.attempts:
			got = true
		case <-time.After(5 * time.Millisecond):
		}
	}
	if again.TransactionID != first.TransactionID {
		t.Fatalf("the retry is %s, want %s", again.TransactionID, first.TransactionID)
	}
	eventually(t, "the queue to empty", func() bool { return q.queued("a.test") == 0 })
}

func TestIdleSendersStopAndWakesNeverGetLost(t *testing.T) {
	q := &memQueue{}
	remote := newFakeRemote(q)
	s := newTestSenders(t, q, remote, SendersOptions{IdleTimeout: time.Millisecond})
	q.queuePDU("a.test", "$0")
	s.Wake("a.test")
	eventually(t, "the sender to stop when idle", func() bool { return q.queued("a.test") == 0 && s.Active() == 0 })
	// Rows queued and woken from many goroutines, each wake about when
	// the sender it goes to may be stopping: every row is sent.
	const goroutines, destinations, rows = 8, 40, 6
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range destinations * rows / goroutines {
				d := fmt.Sprintf("d%d.test", (g*7+i)%destinations)
				q.queuePDU(d, fmt.Sprintf("$%d-%d", g, i))
				s.Wake(d)
				time.Sleep(time.Duration(i%3) * 500 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	queued := func() int {
		n := 0
		for d := range destinations {
			n += q.queued(fmt.Sprintf("d%d.test", d))
		}
		return n
	}
	eventually(t, "every row to be sent", func() bool { return queued() == 0 })
	sent := 0
	for d := range destinations {
		for _, txn := range remote.acceptedFor(fmt.Sprintf("d%d.test", d)) {
			sent += len(txn.PDUs)
		}
	}
	if sent != destinations*rows {
		t.Fatalf("%d PDUs sent, want %d (each once)", sent, destinations*rows)
	}
}

func TestStopAbandonsTheTransactionInFlightAndKeepsItsRows(t *testing.T) {
	q := &memQueue{}
	remote := newFakeRemote(q)
	remote.answer = func(int, gomatrixserverlib.Transaction) (fclient.RespSend, error) {
		time.Sleep(50 * time.Millisecond) // the destination is slow
		return fclient.RespSend{}, errors.New("context canceled")
	}
	s := newTestSenders(t, q, remote, SendersOptions{})
	q.queuePDU("a.test", "$1")
	s.Wake("a.test")
	remote.next(t)
	s.Stop()
	if q.queued("a.test") != 1 {
		t.Fatal("the row of an abandoned transaction is gone")
	}
	s.Wake("a.test") // after Stop: nothing
	if s.Active() != 0 {
		t.Fatal("Wake after Stop spawned a sender")
	}
}

// The real client against a destination on loopback: a signed PUT
// /_matrix/federation/v1/send/{txnId} with the spec's body, retried after
// a 500 with the same ID, the rows deleted after the 200.
func TestClientSendsSignedTransactionsThatTheSendersRetry(t *testing.T) {
	type attempt struct {
		path, auth string
		body       map[string]json.RawMessage
	}
	var mu sync.Mutex
	var attempts []attempt
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		a := attempt{path: r.Method + " " + r.URL.Path, auth: r.Header.Get("Authorization")}
		_ = json.Unmarshal(raw, &a.body)
		mu.Lock()
		attempts = append(attempts, a)
		n := len(attempts)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"try later"}`))
			return
		}
		w.Write([]byte(`{"pdus":{"$1":{}}}`))
	}))
	t.Cleanup(ts.Close)
	dest := strings.TrimPrefix(ts.URL, "https://")
	self := &Identity{ServerName: "127.0.0.1:2", Key: mustKey(t), KeyValidity: time.Hour}
	client := NewClient(self, ClientOptions{SkipTLSVerify: true, AllowPrivateNetworks: true})

	q := &memQueue{}
	q.queuePDU(dest, "$1")
	noErr(t, q.QueueEDU(context.Background(), []string{dest}, "m.typing", []byte(`{"room_id":"!r:x","user_id":"@u:127.0.0.1:2","typing":true}`)))
	system := actor.NewActorSystem()
	s := NewSenders(system, SendersOptions{Origin: self.ServerName, Queue: q, Client: client, RetryMin: time.Millisecond, RetryMax: time.Millisecond, Log: zerolog.Nop()})
	t.Cleanup(func() { s.Stop(); system.Shutdown() })
	noErr(t, s.Start(context.Background()))
	eventually(t, "the queue to empty", func() bool { return q.queued(dest) == 0 })

	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 {
		t.Fatalf("%d attempts, want 2", len(attempts))
	}
	for _, a := range attempts {
		if !strings.HasPrefix(a.path, "PUT /_matrix/federation/v1/send/") || !strings.HasPrefix(a.auth, "X-Matrix origin=") ||
			!strings.Contains(a.auth, `destination="`+dest+`"`) {
			t.Fatalf("request %s with Authorization %q", a.path, a.auth)
		}
		if string(a.body["origin"]) != `"127.0.0.1:2"` || string(a.body["pdus"]) != `[{"event_id":"$1"}]` || a.body["origin_server_ts"] == nil {
			t.Fatalf("body %v", a.body)
		}
		var edus []map[string]json.RawMessage
		if err := json.Unmarshal(a.body["edus"], &edus); err != nil || len(edus) != 1 || string(edus[0]["edu_type"]) != `"m.typing"` {
			t.Fatalf("edus %s", a.body["edus"])
		}
	}
	if attempts[0].path != attempts[1].path {
		t.Fatalf("the retry went to %s, the first attempt to %s", attempts[1].path, attempts[0].path)
	}
	if _, err := client.SendTransaction(context.Background(), gomatrixserverlib.Transaction{Destination: self.ServerName}); err == nil {
		t.Fatal("a transaction to this server was sent")
	}
}
