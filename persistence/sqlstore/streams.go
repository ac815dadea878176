package sqlstore

import (
	"sync"

	"github.com/soma-chat/soma/persistence"
)

// streamTracker knows which stream positions this process has handed out
// but not yet committed, so that MaxStreamPos never lets a reader past a
// position that may still appear.
//
// A position is allocated by the database inside the INSERT of its event,
// so the tracker learns it only when that statement returns. Between the
// statement starting and the tracker learning the position, the allocation
// is "in flight": all the tracker knows is that its position will be higher
// than every position allocated before it started (the floor), because
// positions increase (a PostgreSQL sequence; SQLite's single writer).
// Positions committed by other processes sharing the database are not
// tracked: see the package documentation.
type streamTracker struct {
	mu       sync.Mutex
	done     persistence.StreamPos // highest committed position
	high     persistence.StreamPos // highest position allocated so far
	pending  map[persistence.StreamPos]struct{}
	inFlight map[uint64]persistence.StreamPos // allocation → its floor
	nextID   uint64
}

func newStreamTracker(committed persistence.StreamPos) *streamTracker {
	return &streamTracker{
		done:     committed,
		high:     committed,
		pending:  map[persistence.StreamPos]struct{}{},
		inFlight: map[uint64]persistence.StreamPos{},
	}
}

// max is the highest position at or below which nothing is pending.
func (t *streamTracker) max() persistence.StreamPos {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.done
	for p := range t.pending {
		if p-1 < m {
			m = p - 1
		}
	}
	for _, floor := range t.inFlight {
		if floor < m {
			m = floor
		}
	}
	return m
}

// beginAlloc is called just before a statement that allocates a position.
func (t *streamTracker) beginAlloc() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextID++
	t.inFlight[t.nextID] = t.high
	return t.nextID
}

// endAlloc is called when that statement returned: with the position it
// allocated, now pending until finish, or with ok false when it failed.
func (t *streamTracker) endAlloc(id uint64, pos persistence.StreamPos, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.inFlight, id)
	if !ok {
		return
	}
	t.pending[pos] = struct{}{}
	if pos > t.high {
		t.high = pos
	}
}

// finish ends the transaction that allocated positions: they are readable
// when committed, and never will be otherwise.
func (t *streamTracker) finish(positions []persistence.StreamPos, committed bool) {
	if len(positions) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range positions {
		delete(t.pending, p)
		if committed && p > t.done {
			t.done = p
		}
	}
}
