package rooms_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/soma-chat/soma/persistence/storagetest"
)

// BenchmarkSendGrowth: BenchmarkSendEvent's path, each send with a new
// client txn ID as clients send them, on a database that already holds
// 0, 20,000 and 100,000 events of other rooms (storagetest.Fill); into one
// room, and into 16 rooms at once (an op then sends one event to each).
// cpu-ns/event is this process's CPU per event.
func BenchmarkSendGrowth(b *testing.B) {
	for _, backend := range benchBackends {
		for _, prefill := range storagetest.GrowthPrefills {
			for _, n := range []int{1, 16} {
				b.Run(fmt.Sprintf("%s/events=%d/rooms=%d", backend, prefill, n), func(b *testing.B) {
					store := openStore(b, backend)
					storagetest.Fill(b, store, prefill)
					h := newHarness(b, store, 0)
					rooms := make([]string, n)
					for i := range rooms {
						rooms[i] = fmt.Sprintf("!growth%d:test.local", i)
						h.createRoom(rooms[i])
					}
					var txn atomic.Int64
					b.ResetTimer()
					cpu := cpuTime()
					ops := 0
					for ; b.Loop(); ops++ {
						var wg sync.WaitGroup
						for _, room := range rooms {
							wg.Go(func() {
								if r := h.send(room, "DEV", "t"+strconv.FormatInt(txn.Add(1), 10), "hello"); r.Error != nil {
									b.Errorf("send: %v", r.Error)
								}
							})
						}
						wg.Wait()
					}
					b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(ops*n), "cpu-ns/event")
				})
			}
		}
	}
}
