package rooms_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/backends"
	"github.com/soma-chat/soma/persistence/pgtest"
	"github.com/soma-chat/soma/rooms"
)

func TestMain(m *testing.M) { pgtestMain(m) }

// faultyStore is a real store that can be told to panic inside the next
// commit, to exercise supervision.
type faultyStore struct {
	persistence.Store
	panicNext atomic.Bool
	// commits and events count what CommitEvents was asked to store;
	// fenced counts commits refused for a stale epoch.
	commits, events, fenced atomic.Int64
}

func (f *faultyStore) CommitEvents(ctx context.Context, req persistence.CommitRequest) (*persistence.CommitResult, error) {
	if f.panicNext.CompareAndSwap(true, false) {
		panic("injected fault")
	}
	f.commits.Add(1)
	f.events.Add(int64(len(req.Events)))
	res, err := f.Store.CommitEvents(ctx, req)
	if errors.Is(err, persistence.ErrFenced) {
		f.fenced.Add(1)
	}
	return res, err
}

type harness struct {
	t      testing.TB
	store  *faultyStore
	router *actors.LocalRoomRouter
	signer *rooms.Signer
}

func openStore(t testing.TB, backend string) persistence.Store {
	t.Helper()
	cfg := backends.Config{Backend: backend}
	switch backend {
	case "sqlite", "sqlite-mattn":
		cfg.Backend, cfg.SQLitePath = "sqlite", filepath.Join(t.TempDir(), "soma.db")
		if backend == "sqlite-mattn" {
			cfg.SQLiteDriver = "mattn"
		}
	case "postgres":
		cfg.PostgresDSN = pgtest.DSN(t)
	}
	s, err := backends.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newHarness(t testing.TB, store persistence.Store, idle time.Duration) *harness {
	h := &harness{t: t, store: &faultyStore{Store: store}, signer: testSigner(t)}
	system := actors.NewSystem(zerolog.Nop())
	t.Cleanup(func() { system.Shutdown() })
	var router *actors.LocalRoomRouter
	deps := &rooms.Deps{
		Store:       h.store,
		Signer:      h.signer,
		Passivate:   func(id string, pid *actor.PID) bool { return router.Passivate(id, pid) },
		IdleTimeout: idle,
		Log:         zerolog.Nop(),
		Now:         time.Now,
	}
	router = actors.NewLocalRoomRouter(system, func(id string) actor.Producer { return rooms.NewActor(id, deps) })
	h.router = router
	return h
}

func (h *harness) request(roomID string, msg proto.Message) proto.Message {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := h.router.RequestRoom(ctx, roomID, msg)
	if err != nil {
		h.t.Fatal(err)
	}
	return reply
}

const alice = "@alice:test.local"

func (h *harness) createRoom(roomID string) {
	h.t.Helper()
	req := &rooms.CreateRequest{Preset: "public_chat"}
	evs, err := req.Compose(alice, "11", rooms.CreatorProfile{})
	if err != nil {
		h.t.Fatal(err)
	}
	reply := h.request(roomID, &messages.CreateRoom{RoomId: roomID, RoomVersion: "11", Events: evs}).(*messages.CreateRoomReply)
	if reply.Error != nil {
		h.t.Fatalf("create: %v", reply.Error)
	}
}

func (h *harness) send(roomID, device, txn, body string) *messages.SendEventReply {
	h.t.Helper()
	c, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	return h.request(roomID, &messages.SendEvent{
		RoomId: roomID, DeviceId: device, TxnId: txn,
		Event: &messages.EventContent{Sender: alice, Type: "m.room.message", Content: c},
	}).(*messages.SendEventReply)
}

func (h *harness) mustSend(roomID, body string) string {
	h.t.Helper()
	r := h.send(roomID, "DEV", "", body)
	if r.Error != nil {
		h.t.Fatalf("send %q: %v", body, r.Error)
	}
	return r.EventId
}

// prevOf reads a stored event's prev_events.
func (h *harness) prevOf(eventID string) []string {
	h.t.Helper()
	ev, err := h.store.EventByID(context.Background(), eventID)
	if err != nil {
		h.t.Fatal(err)
	}
	var pdu struct {
		PrevEvents []string `json:"prev_events"`
	}
	if err := json.Unmarshal(ev.JSON, &pdu); err != nil {
		h.t.Fatal(err)
	}
	return pdu.PrevEvents
}

func TestPanicAnswersRestartsAndReloads(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!panic:test.local"
	h.createRoom(room)
	first := h.mustSend(room, "before")

	h.store.panicNext.Store(true)
	r := h.send(room, "DEV", "", "boom")
	if r.Error == nil || r.Error.Errcode != "M_UNKNOWN" {
		t.Fatalf("a panicking command must be answered with M_UNKNOWN, got %+v", r)
	}
	// The restarted actor reloaded the head from storage: the next event
	// follows the last stored one, not the lost one.
	next := h.mustSend(room, "after")
	if prev := h.prevOf(next); len(prev) != 1 || prev[0] != first {
		t.Fatalf("after restart prev_events = %v, want [%s]", prev, first)
	}
	h.mustVerify(room)
}

// mustVerify fails the test unless the room's stored head, state and
// projections are what its events give.
func (h *harness) mustVerify(roomID string) {
	h.t.Helper()
	report, err := rooms.VerifyRoom(context.Background(), h.store, roomID)
	if err != nil {
		h.t.Fatal(err)
	}
	if !report.OK() {
		h.t.Fatalf("room %s is inconsistent: %+v", roomID, report.Problems)
	}
}

func TestRoomSurvivesRepeatedPanics(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!fragile:test.local"
	h.createRoom(room)
	// More failures in a row than protoactor's default strategy tolerates
	// (10 in 10 s): the room must still answer afterwards.
	for i := 0; i < 15; i++ {
		h.store.panicNext.Store(true)
		if r := h.send(room, "DEV", "", "boom"); r.Error == nil || r.Error.Errcode != "M_UNKNOWN" {
			t.Fatalf("panic %d: got %+v, want M_UNKNOWN", i, r)
		}
	}
	h.mustSend(room, "still here")
	h.mustVerify(room)
}

func TestIdleRoomPassivatesAndComesBack(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 50*time.Millisecond)
	const room = "!idle:test.local"
	h.createRoom(room)
	first := h.mustSend(room, "one")
	deadline := time.Now().Add(5 * time.Second)
	for h.router.Active() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle room actor did not passivate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	second := h.mustSend(room, "two")
	if prev := h.prevOf(second); len(prev) != 1 || prev[0] != first {
		t.Fatalf("reactivated room lost its head: prev_events = %v, want [%s]", prev, first)
	}
}

func TestPassivationLosesNoRequest(t *testing.T) {
	// Idle timeouts shorter than the gaps between requests: activations
	// come and go while requests keep arriving; none may be dropped.
	h := newHarness(t, openStore(t, "sqlite"), time.Millisecond)
	const room = "!churn:test.local"
	h.createRoom(room)
	for i := 0; i < 40; i++ {
		h.mustSend(room, fmt.Sprint(i))
		time.Sleep(time.Duration(i%3) * time.Millisecond)
	}
}

func TestInspectAnswersWithTheActorsHead(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!inspect:test.local"
	h.createRoom(room)
	last := h.mustSend(room, "hello")
	in := h.request(room, &messages.InspectRoom{RoomId: room}).(*messages.RoomInspection)
	if in.Error != nil || !in.Loaded || in.RoomVersion != "11" || in.JoinedMembers != 1 ||
		len(in.ForwardExtremities) != 1 || in.ForwardExtremities[0] != last ||
		len(in.Servers) != 1 || in.Servers[0] != "test.local" || in.Epoch < 1 || in.StateEvents < 5 {
		t.Fatalf("inspection = %+v", in)
	}
}

func TestInjectedFaultAnswersRestartsAndKeepsTheRoom(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!fault:test.local"
	h.createRoom(room)
	before := h.mustSend(room, "before")
	reply := h.request(room, &messages.InjectFault{RoomId: room, Reason: "test"}).(*messages.FaultReply)
	if reply.Error == nil || reply.Error.Errcode != "M_UNKNOWN" {
		t.Fatalf("fault reply = %+v, want an M_UNKNOWN error", reply)
	}
	after := h.mustSend(room, "after")
	if prev := h.prevOf(after); len(prev) != 1 || prev[0] != before {
		t.Fatalf("after the restart prev_events = %v, want [%s]", prev, before)
	}
	h.mustVerify(room)
}

func TestSendIsIdempotentPerDevice(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!txn:test.local"
	h.createRoom(room)
	a := h.send(room, "DEV1", "txn-1", "x")
	b := h.send(room, "DEV1", "txn-1", "x")
	c := h.send(room, "DEV2", "txn-1", "x")
	if a.Error != nil || b.Error != nil || c.Error != nil {
		t.Fatal(a.Error, b.Error, c.Error)
	}
	if a.EventId != b.EventId {
		t.Errorf("retry on the same device gave %s, want %s", b.EventId, a.EventId)
	}
	if c.EventId == a.EventId {
		t.Errorf("another device's txn-1 must be a new event")
	}
}

// TestFencedCommitIsRetriedOnTheLiveActivation: a commit fenced off by a
// newer activation stores nothing; the stale actor refuses the command as
// moved and stops, and the router sends the command to a fresh activation,
// which builds it on the stored head.
func TestFencedCommitIsRetriedOnTheLiveActivation(t *testing.T) {
	store := openStore(t, "sqlite")
	h := newHarness(t, store, 0)
	const room = "!fence:test.local"
	h.createRoom(room)
	first := h.mustSend(room, "one")
	// Another activation claims the room behind this one's back.
	if _, err := store.ClaimRoom(context.Background(), room); err != nil {
		t.Fatal(err)
	}
	next := h.mustSend(room, "after the fence")
	if prev := h.prevOf(next); len(prev) != 1 || prev[0] != first {
		t.Fatalf("prev_events = %v, want [%s]", prev, first)
	}
	if h.store.fenced.Load() != 1 {
		t.Fatalf("%d commits were fenced, want 1", h.store.fenced.Load())
	}
	if n := h.router.Active(); n != 1 {
		t.Fatalf("%d activations routed to, want 1 (the live one)", n)
	}
	// The stale activation stopped: it no longer answers.
	deadline := time.Now().Add(10 * time.Second)
	for h.router.Retiring() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fenced-off activation did not stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTwoActivationsNeverFork forces two live activations of one room — two
// actor systems, as two nodes would have during a membership change —
// sending at once. Every commit is a compare-and-set on the room's epoch:
// exactly one wins each time, the loser reloads and retries, the room
// stays one chain and every acknowledged event is stored.
//
// Two activations that both keep receiving traffic fence each other by
// claiming the room in turn (a cluster ends that by routing to one owner),
// so a send may be refused with 503; the clients here do what a Matrix
// client does and retry the same transaction after a jittered pause.
func TestTwoActivationsNeverFork(t *testing.T) {
	const senders, perSender, maxAttempts = 8, 15, 200
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			store := openStore(t, backend)
			nodeA, nodeB := newHarness(t, store, 0), newHarness(t, store, 0)
			const room = "!contested:test.local"
			nodeA.createRoom(room)

			var mu sync.Mutex
			acked := map[string]bool{}
			var refused atomic.Int64
			var wg sync.WaitGroup
			for s := 0; s < senders; s++ {
				h := []*harness{nodeA, nodeB}[s%2]
				wg.Add(1)
				go func(h *harness, who string, rng *rand.Rand) {
					defer wg.Done()
					for i := 0; i < perSender; i++ {
						txn := fmt.Sprint(i)
						for attempt := 1; ; attempt++ {
							r := h.send(room, who, txn, who)
							if r.Error == nil {
								mu.Lock()
								acked[r.EventId] = true
								mu.Unlock()
								break
							}
							if r.Error.HttpStatus != 503 {
								t.Errorf("send: %v", r.Error)
								return
							}
							refused.Add(1)
							if attempt == maxAttempts {
								t.Errorf("%s txn %s: still refused after %d attempts", who, txn, attempt)
								return
							}
							time.Sleep(time.Duration(rng.Intn(2000*min(attempt, 10))) * time.Microsecond)
						}
					}
				}(h, fmt.Sprint("sender", s), rand.New(rand.NewSource(int64(s))))
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			if len(acked) != senders*perSender {
				t.Fatalf("%d distinct events acknowledged, want %d", len(acked), senders*perSender)
			}
			t.Logf("%d acknowledged after %d refusals; commits fenced: %d on A, %d on B", len(acked), refused.Load(), nodeA.store.fenced.Load(), nodeB.store.fenced.Load())

			nid, _, err := store.RoomInfo(context.Background(), room)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := store.RoomEvents(context.Background(), nid, 0, 1<<40, 1000, true)
			if err != nil {
				t.Fatal(err)
			}
			stored := map[string]bool{}
			for i, ev := range evs {
				stored[ev.EventID] = true
				if i > 0 {
					if prev := nodeA.prevOf(ev.EventID); len(prev) != 1 || prev[0] != evs[i-1].EventID {
						t.Fatalf("event %d has prev_events %v, want [%s]: the room forked", i, prev, evs[i-1].EventID)
					}
				}
			}
			for id := range acked {
				if !stored[id] {
					t.Errorf("acknowledged event %s is not stored", id)
				}
			}
			head, err := store.ClaimRoom(context.Background(), room)
			if err != nil {
				t.Fatal(err)
			}
			if len(head.Extremities) != 1 || head.Extremities[0] != evs[len(evs)-1].EventID {
				t.Errorf("head extremities %v, want the last event %s", head.Extremities, evs[len(evs)-1].EventID)
			}
			nodeA.mustVerify(room)
		})
	}
}
