package rooms_test

import (
	"fmt"
	"sync/atomic"
	"testing"
)

var benchBackends = []string{"sqlite", "sqlite-mattn", "postgres"}

// BenchmarkSendEvent measures the send path a client's PUT /send takes
// below HTTP: router → room actor → build, sign, authorise → commit →
// reply. One room, one sender at a time; each backend and SQLite driver.
func BenchmarkSendEvent(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			h := newHarness(b, openStore(b, backend), 0)
			const room = "!bench:test.local"
			h.createRoom(room)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.mustSend(room, "hello")
			}
			reportEventsPerSecond(b)
		})
	}
}

// BenchmarkSendEventConcurrent: 16 senders into one room, where group
// commit puts the sends waiting in the mailbox into one transaction.
func BenchmarkSendEventConcurrent(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			h := newHarness(b, openStore(b, backend), 0)
			const room = "!bench:test.local"
			h.createRoom(room)
			commits := h.store.commits.Load()
			b.SetParallelism(8) // × GOMAXPROCS (2 here) = 16 senders
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					h.mustSend(room, "hello")
				}
			})
			reportEventsPerSecond(b)
			b.ReportMetric(float64(b.N)/float64(h.store.commits.Load()-commits), "events/commit")
		})
	}
}

// BenchmarkSendEventManyRooms: 100 rooms, senders spread over them; rooms
// commit in parallel on the pool.
func BenchmarkSendEventManyRooms(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			h := newHarness(b, openStore(b, backend), 0)
			const rooms = 100
			for i := 0; i < rooms; i++ {
				h.createRoom(fmt.Sprintf("!bench%d:test.local", i))
			}
			var next atomic.Int64
			b.SetParallelism(16) // 32 senders over 100 rooms
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					h.mustSend(fmt.Sprintf("!bench%d:test.local", next.Add(1)%rooms), "hello")
				}
			})
			reportEventsPerSecond(b)
		})
	}
}

func reportEventsPerSecond(b *testing.B) {
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
