package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/soma-chat/soma/persistence"
)

// Reading state out of snapshots: a snapshot is an ordered list of blocks,
// and for each (type, state key) the entry of the last block that has one
// wins.

// resolveState returns the state the blocks describe.
func (s *Store) resolveState(ctx context.Context, tx *sql.Tx, blocks []persistence.StateBlockNID) (map[stateKeyTuple]persistence.EventNID, error) {
	order, err := blockOrder(blocks)
	if err != nil {
		return nil, err
	}
	type winner struct {
		event persistence.EventNID
		index int
	}
	state := map[stateKeyTuple]winner{}
	seen := make(map[persistence.StateBlockNID]bool, len(blocks))
	err = s.stateBlocks.BulkSelectStateBlockEntries(ctx, tx, blocks, func(b persistence.StateBlockNID, e stateEntry) error {
		i, ok := order[b]
		if !ok {
			return fmt.Errorf("state block %d was not asked for", b)
		}
		if e.Type <= 0 || e.Key <= 0 || e.Event <= 0 {
			return fmt.Errorf("state block %d has a bad entry %+v", b, e)
		}
		seen[b] = true
		if w, ok := state[e.stateKeyTuple]; !ok || w.index < i {
			state[e.stateKeyTuple] = winner{e.Event, i}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select state blocks: %w", err)
	}
	if len(seen) != len(blocks) {
		return nil, fmt.Errorf("%d of the state blocks %v are missing", len(blocks)-len(seen), blocks)
	}
	out := make(map[stateKeyTuple]persistence.EventNID, len(state))
	for t, w := range state {
		out[t] = w.event
	}
	return out, nil
}

func blockOrder(blocks []persistence.StateBlockNID) (map[persistence.StateBlockNID]int, error) {
	order := make(map[persistence.StateBlockNID]int, len(blocks))
	for i, b := range blocks {
		if _, dup := order[b]; dup {
			return nil, fmt.Errorf("state block %d is listed twice in %v", b, blocks)
		}
		order[b] = i
	}
	return order, nil
}

// SnapshotEvents implements persistence.RoomStore. The events come oldest
// first; snapshot 0 (a room with no state yet) has none.
func (s *Store) SnapshotEvents(ctx context.Context, snapshot persistence.StateSnapshotNID) ([]persistence.StoredEvent, error) {
	if snapshot == 0 {
		return nil, nil
	}
	blocks, err := s.stateSnapshots.SelectStateSnapshotBlocks(ctx, snapshot)
	if err != nil {
		return nil, fmt.Errorf("persistence.SnapshotEvents: snapshot %d: %w", snapshot, notFoundIfNoRows(err))
	}
	state, err := s.resolveState(ctx, nil, blocks)
	if err != nil {
		return nil, fmt.Errorf("persistence.SnapshotEvents: snapshot %d: %w", snapshot, err)
	}
	nids := make([]int64, 0, len(state))
	for _, ev := range state {
		nids = append(nids, int64(ev))
	}
	evs, err := s.events.BulkSelectEventsByNID(ctx, nids)
	if err != nil {
		return nil, fmt.Errorf("persistence.SnapshotEvents: snapshot %d: %w", snapshot, err)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].NID < evs[j].NID })
	return evs, nil
}

// StateEventAt implements persistence.RoomReader.
func (s *Store) StateEventAt(ctx context.Context, snapshot persistence.StateSnapshotNID, eventType, stateKey string) (*persistence.StoredEvent, error) {
	if snapshot == 0 {
		return nil, fmt.Errorf("persistence.StateEventAt: %w", persistence.ErrNotFound)
	}
	blocks, err := s.stateSnapshots.SelectStateSnapshotBlocks(ctx, snapshot)
	if err != nil {
		return nil, fmt.Errorf("persistence.StateEventAt: snapshot %d: %w", snapshot, notFoundIfNoRows(err))
	}
	order, err := blockOrder(blocks)
	if err != nil {
		return nil, fmt.Errorf("persistence.StateEventAt: snapshot %d: %w", snapshot, err)
	}
	best, bestEvent := -1, persistence.EventNID(0)
	err = s.stateBlocks.BulkSelectStateBlockEntriesByKey(ctx, blocks, eventType, stateKey, func(b persistence.StateBlockNID, ev persistence.EventNID) error {
		i, ok := order[b]
		if !ok {
			return fmt.Errorf("state block %d was not asked for", b)
		}
		if i > best {
			best, bestEvent = i, ev
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persistence.StateEventAt: snapshot %d: %w", snapshot, err)
	}
	if best < 0 {
		return nil, fmt.Errorf("persistence.StateEventAt: %w", persistence.ErrNotFound)
	}
	evs, err := s.events.BulkSelectEventsByNID(ctx, []int64{int64(bestEvent)})
	if err != nil {
		return nil, fmt.Errorf("persistence.StateEventAt: snapshot %d: %w", snapshot, err)
	}
	return &evs[0], nil
}
