package metrics

import "sync/atomic"

// windowSeconds is how far back "recent" figures look (events/s, hotness).
const windowSeconds = 60

// window counts what happened in each of the last windowSeconds seconds.
// One goroutine (the actor's) adds; any may read.
type window struct {
	slots [windowSeconds]windowSlot
}

type windowSlot struct {
	sec atomic.Int64 // the Unix second the slot counts
	n   atomic.Uint64
}

func (w *window) add(sec int64, n uint64) {
	s := &w.slots[sec%windowSeconds]
	if s.sec.Load() != sec {
		// A new second: the slot's count is from windowSeconds or more ago.
		// Zero it before claiming it, so a reader that sees the new second
		// never sees the old count.
		s.n.Store(0)
		s.sec.Store(sec)
	}
	s.n.Add(n)
}

// sum is the count over the windowSeconds seconds up to and including now.
func (w *window) sum(now int64) uint64 {
	var total uint64
	for i := range w.slots {
		s := &w.slots[i]
		if sec := s.sec.Load(); sec > now-windowSeconds && sec <= now {
			total += s.n.Load()
		}
	}
	return total
}
