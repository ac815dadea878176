package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/rooms"
)

// join sends user's join to a public room.
func (h *harness) join(roomID, user string) *messages.SendEventReply {
	h.t.Helper()
	c, _ := json.Marshal(map[string]string{"membership": "join"})
	return h.request(roomID, &messages.SendEvent{
		RoomId: roomID, DeviceId: "DEV",
		Event: &messages.EventContent{Sender: user, Type: "m.room.member", StateKey: &user, Content: c},
	}).(*messages.SendEventReply)
}

// populate joins n users to a room, 16 at a time.
func (h *harness) populate(roomID string, n int) {
	h.t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if r := h.join(roomID, fmt.Sprintf("@member%d:test.local", i)); r.Error != nil {
					h.t.Errorf("join: %v", r.Error)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkJoinStorm: users joining one public room as fast as 16 callers
// can; each join is a new state block of one tuple on the shared snapshot.
func BenchmarkJoinStorm(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			h := newHarness(b, openStore(b, backend), 0)
			const room = "!storm:test.local"
			h.createRoom(room)
			b.ResetTimer()
			h.populate(room, b.N)
			reportEventsPerSecond(b)
		})
	}
}

// BenchmarkSendInBigRoom: serial sends into a room of 1,000 members, with
// the process CPU each costs (for SQLite that is all the server's work;
// PostgreSQL's own CPU is in its processes and not counted).
func BenchmarkSendInBigRoom(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			h := newHarness(b, openStore(b, backend), 0)
			const room = "!big:test.local"
			h.createRoom(room)
			h.populate(room, 1000)
			cpu := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.mustSend(room, "hello")
			}
			reportEventsPerSecond(b)
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

// BenchmarkColdActivation: loading a 10,000-member room from storage, as a
// new activation does (claim the head, read the current snapshot, parse
// its events).
func BenchmarkColdActivation(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			store := openStore(b, backend)
			h := newHarness(b, store, 0)
			const room = "!huge:test.local"
			h.createRoom(room)
			h.populate(room, 10000)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := rooms.LoadRoom(context.Background(), store, room)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.State) < 10000 {
					b.Fatalf("loaded %d state events", len(r.State))
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/activation")
		})
	}
}
