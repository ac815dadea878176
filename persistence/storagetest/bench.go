package storagetest

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soma-chat/soma/persistence"
)

// benchRooms numbers the benchmarks' rooms: a benchmark function runs
// several times, possibly on the same store, and benchRun tells this
// process's rooms from those of an earlier one in a database it reopens.
var (
	benchRooms atomic.Int64
	benchRun   = strconv.FormatInt(time.Now().UnixNano(), 36)
)

// benchRoom creates a room with ten state events, as a small real room has.
func benchRoom(b *testing.B, s persistence.Store) *room {
	return benchRoomWith(b, s, false)
}

// benchRoomWith is benchRoom, with event IDs that are hashes when hashIDs.
func benchRoomWith(b *testing.B, s persistence.Store, hashIDs bool) *room {
	r := newRoom(s, fmt.Sprintf("!bench%s-%d:test", benchRun, benchRooms.Add(1)))
	r.hashIDs = hashIDs
	r.create(b, "@alice:test")
	r.mustCommit(b,
		r.event("m.room.history_visibility", ptr(""), "@alice:test", `{"history_visibility":"shared"}`),
		r.event("m.room.guest_access", ptr(""), "@alice:test", `{"guest_access":"can_join"}`),
		r.event("m.room.name", ptr(""), "@alice:test", `{"name":"Bench"}`),
		r.event("m.room.topic", ptr(""), "@alice:test", `{"topic":"Benchmarks"}`),
		r.member("@bob:test", "join"),
		r.member("@carol:test", "join"),
	)
	return r
}

// sendOne commits one message the way a client send does: with its txn
// mapping, moving the extremities and depth.
func (r *room) sendOne(b *testing.B, i int) {
	if err := r.send(i, false); err != nil {
		b.Fatal(err)
	}
}

// send commits one message as sendOne does; with lookup, it first checks
// that the txn ID is new, as the room actor does for a client's send.
func (r *room) send(i int, lookup bool) error {
	id := fmt.Sprintf("$%s-%d", r.id, r.n+1)
	if r.hashIDs {
		id = hashEventID(r.id, r.n+1)
	}
	txn := persistence.TxnKey{UserID: "@alice:test", DeviceID: "BENCH", TxnID: id}
	if lookup {
		if _, err := r.s.LookupTxn(bg, txn); !errors.Is(err, persistence.ErrNotFound) {
			return fmt.Errorf("LookupTxn of a new txn ID: %v, want ErrNotFound", err)
		}
	}
	r.n++
	res, err := r.s.CommitEvents(bg, persistence.CommitRequest{
		RoomNID: r.nid, Epoch: r.epoch, Snapshot: r.snapshot, Blocks: r.blocks,
		Events: []persistence.NewEvent{{
			EventID: id, Type: "m.room.message", Sender: "@alice:test", Depth: r.depth + 1, OriginServerTS: 1_700_000_000_000,
			JSON: []byte(fmt.Sprintf(`{"auth_events":["$a","$b","$c"],"content":{"body":"message %d","msgtype":"m.text"},"depth":%d,"hashes":{"sha256":"K8c9nFz0d1cB9vTQ9h3yq1Zl3a9bB6V3aB6cD2wq5rE"},"origin_server_ts":1700000000000,"prev_events":["$prev"],"room_id":%q,"sender":"@alice:test","signatures":{"test":{"ed25519:a":"sig"}},"type":"m.room.message"}`, i, r.depth+1, r.id)),
			Txn:  &txn,
		}},
		Extremities: []string{id}, Depth: r.depth + 1,
	})
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	r.depth++
	r.snapshot, r.blocks = res.Snapshot, res.Blocks
	return nil
}

// BenchCommitSingleEvent measures the send path: one message event per
// commit to a room with ten state events. Besides the wall time (mostly
// the wait for the commit to reach the disk) it reports cpu-ns/op, the CPU
// this process spends per commit: the driver's and the store's cost, not
// the database server's.
func BenchCommitSingleEvent(b *testing.B, s persistence.Store) {
	r := benchRoom(b, s)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	n := 0
	for ; b.Loop(); n++ {
		r.sendOne(b, n)
	}
	b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(n), "cpu-ns/op")
}

// BenchCommitParallelRooms measures sends to many rooms at once: each
// goroutine of b.RunParallel (GOMAXPROCS of them; more with
// b.SetParallelism) sends to its own room.
func BenchCommitParallelRooms(b *testing.B, s persistence.Store, parallelism int) {
	n := runtime.GOMAXPROCS(0) * max(1, parallelism)
	rooms := make(chan *room, n)
	for range n {
		rooms <- benchRoom(b, s)
	}
	b.SetParallelism(max(1, parallelism))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := <-rooms
		for i := 0; pb.Next(); i++ {
			r.sendOne(b, i)
		}
	})
}

// GrowthPrefills are the database sizes, in events, that the backends run
// BenchCommitGrowth with.
var GrowthPrefills = []int{0, 20_000, 100_000}

// BenchCommitGrowth measures sends on a database that already holds
// prefill events (see Fill), to see whether a send costs more as the
// database grows. A send is what the room actor does for a client's new
// transaction: a LookupTxn that finds nothing, then the commit of one
// message with its txn mapping. Event IDs are hashes, as real ones are, so
// that an index on them takes each send at a random place. Each op is one
// send to each of rooms new rooms, made at once. cpu-ns/event is this
// process's CPU per send (for PostgreSQL the server's is not counted);
// user-ns/event and sys-ns/event are its parts in user space (store,
// driver, SQLite) and in the kernel (mostly writing and syncing files).
func BenchCommitGrowth(b *testing.B, s persistence.Store, prefill, rooms int) {
	Fill(b, s, prefill)
	rs := make([]*room, rooms)
	for i := range rs {
		rs[i] = benchRoomWith(b, s, true)
	}
	errs := make([]error, rooms)
	b.ReportAllocs()
	b.ResetTimer()
	user, sys := processCPUSplit()
	n := 0
	for ; b.Loop(); n++ {
		var wg sync.WaitGroup
		for j, r := range rs {
			wg.Go(func() { errs[j] = r.send(n, true) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
	}
	user2, sys2 := processCPUSplit()
	events := float64(n * rooms)
	b.ReportMetric(float64((user2-user+sys2-sys).Nanoseconds())/events, "cpu-ns/event")
	b.ReportMetric(float64((user2-user).Nanoseconds())/events, "user-ns/event")
	b.ReportMetric(float64((sys2-sys).Nanoseconds())/events, "sys-ns/event")
}

// Fill commits n events to s, for benchmarks that need a grown database:
// new rooms of 100 events each, ten state events (as benchRoom) then
// messages committed 30 at a time, each with its txn mapping, every event
// ID a hash.
func Fill(b *testing.B, s persistence.Store, n int) {
	b.Helper()
	const roomEvents, batch = 100, 30
	txn := 0
	for filled := 0; filled < n; {
		r := benchRoomWith(b, s, true)
		filled += r.n
		for r.n < roomEvents && filled < n {
			evs := make([]persistence.NewEvent, min(batch, roomEvents-r.n, n-filled))
			for j := range evs {
				txn++
				evs[j] = r.message("@bob:test", fmt.Sprintf("message %d of the prefill", txn))
				evs[j].Txn = &persistence.TxnKey{UserID: "@bob:test", DeviceID: "FILL", TxnID: fmt.Sprintf("m%d", txn)}
			}
			req := r.request(evs...)
			res, err := s.CommitEvents(bg, req)
			if err != nil {
				b.Fatalf("prefill: %v", err)
			}
			r.snapshot, r.blocks, r.depth = res.Snapshot, res.Blocks, req.Depth
			filled += len(evs)
		}
	}
}
