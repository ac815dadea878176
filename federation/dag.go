package federation

import (
	"cmp"
	"container/heap"
	"context"
	"slices"

	"github.com/soma-chat/soma/persistence"
)

// The walks over a room's event graph that /backfill, /get_missing_events,
// /event_auth and /state answer with. They are pure over a loader so that
// tests can drive them with a graph in a map.

// dagEvent is an event's place in its room's graph.
type dagEvent struct {
	ID     string
	Depth  int64
	Stream persistence.StreamPos
	Prev   []string // prev_events
	Auth   []string // auth_events
	Stored *persistence.StoredEvent
}

// dagLoader returns an event of the room being walked, or nil (no error)
// when this server does not have it or it belongs to another room: the
// walks never leave the room.
type dagLoader func(ctx context.Context, eventID string) (*dagEvent, error)

// walkBackfill answers /backfill: the from events and those before them,
// at most limit, taken deepest first (Synapse's order: a priority queue on
// depth, then stream position, fed with each taken event's prev_events),
// and returned in that order.
func walkBackfill(ctx context.Context, load dagLoader, from []string, limit int) ([]*dagEvent, error) {
	if limit < 1 {
		return nil, nil
	}
	var q deepestFirst
	queued := map[string]bool{}
	push := func(id string) error {
		if queued[id] {
			return nil
		}
		queued[id] = true
		ev, err := load(ctx, id)
		if err != nil || ev == nil {
			return err
		}
		heap.Push(&q, ev)
		return nil
	}
	for _, id := range from {
		if err := push(id); err != nil {
			return nil, err
		}
	}
	var out []*dagEvent
	for q.Len() > 0 && len(out) < limit {
		ev := heap.Pop(&q).(*dagEvent)
		out = append(out, ev)
		for _, p := range ev.Prev {
			if err := push(p); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// deepestFirst is a heap of events, the deepest (then the latest stored)
// on top.
type deepestFirst []*dagEvent

func (h deepestFirst) Len() int { return len(h) }
func (h deepestFirst) Less(i, j int) bool {
	if h[i].Depth != h[j].Depth {
		return h[i].Depth > h[j].Depth
	}
	return h[i].Stream > h[j].Stream
}
func (h deepestFirst) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deepestFirst) Push(x any)   { *h = append(*h, x.(*dagEvent)) }
func (h *deepestFirst) Pop() any {
	old := *h
	ev := old[len(old)-1]
	*h = old[:len(old)-1]
	return ev
}

// walkMissing answers /get_missing_events: a breadth-first walk of the
// prev_events of latest, never entering the earliest events (the
// requester has them) nor events shallower than minDepth, collecting at
// most limit events. latest themselves are not part of the answer (the
// requester has them too). The answer is oldest first: by depth, then
// by stream position (Synapse reverses its walk, which is about that).
func walkMissing(ctx context.Context, load dagLoader, earliest, latest []string, limit int, minDepth int64) ([]*dagEvent, error) {
	if limit < 1 {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, id := range earliest {
		seen[id] = true
	}
	var front []*dagEvent
	for _, id := range latest {
		if seen[id] {
			continue
		}
		seen[id] = true
		ev, err := load(ctx, id)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			front = append(front, ev)
		}
	}
	var out []*dagEvent
	for len(front) > 0 && len(out) < limit {
		var next []*dagEvent
		for _, ev := range front {
			for _, p := range ev.Prev {
				if len(out) >= limit {
					break
				}
				if seen[p] {
					continue
				}
				seen[p] = true
				pe, err := load(ctx, p)
				if err != nil {
					return nil, err
				}
				if pe == nil || pe.Depth < minDepth {
					continue
				}
				out = append(out, pe)
				next = append(next, pe)
			}
		}
		front = next
	}
	slices.SortStableFunc(out, oldestFirst)
	return out, nil
}

// walkAuthChain returns the auth chain of the from events: their
// auth_events and those events' auth_events, recursively, each once,
// shallowest first. The from events themselves are part of it only when
// one of them authorises another. Auth events this server does not have
// are left out (they cannot be sent).
func walkAuthChain(ctx context.Context, load dagLoader, from []*dagEvent) ([]*dagEvent, error) {
	seen := map[string]bool{}
	var out []*dagEvent
	next := from
	for len(next) > 0 {
		var ids []string
		for _, ev := range next {
			for _, a := range ev.Auth {
				if !seen[a] {
					seen[a] = true
					ids = append(ids, a)
				}
			}
		}
		next = next[:0:0]
		for _, id := range ids {
			ev, err := load(ctx, id)
			if err != nil {
				return nil, err
			}
			if ev != nil {
				out = append(out, ev)
				next = append(next, ev)
			}
		}
	}
	slices.SortStableFunc(out, oldestFirst)
	return out, nil
}

// oldestFirst orders events by depth, then stream position.
func oldestFirst(a, b *dagEvent) int {
	if c := cmp.Compare(a.Depth, b.Depth); c != 0 {
		return c
	}
	return cmp.Compare(a.Stream, b.Stream)
}
