package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/soma-chat/soma/persistence"
)

// The write side of rooms: activations claim a room, then commit batches of
// events fenced by the epoch they claimed.

// ClaimRoom implements persistence.RoomStore.
func (s *Store) ClaimRoom(ctx context.Context, roomID string) (*persistence.RoomHead, error) {
	var head *persistence.RoomHead
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		nid, version, err := s.rooms.SelectRoomInfo(ctx, tx, roomID)
		if err != nil {
			return notFoundIfNoRows(err)
		}
		head, err = s.rooms.ClaimRoomHead(ctx, tx, nid)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("room %s (NID %d) has no head", roomID, nid)
		}
		if err != nil {
			return err
		}
		head.RoomID, head.Version = roomID, version
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persistence.ClaimRoom: %w", err)
	}
	return head, nil
}

// LookupTxn implements persistence.RoomStore.
func (s *Store) LookupTxn(ctx context.Context, key persistence.TxnKey) (string, error) {
	id, err := s.txnIDs.SelectTxnEventID(ctx, key)
	if err != nil {
		return "", fmt.Errorf("persistence.LookupTxn: %w", notFoundIfNoRows(err))
	}
	return id, nil
}

// RejectedReason implements persistence.RoomStore.
func (s *Store) RejectedReason(ctx context.Context, eventID string) (string, error) {
	reason, err := s.rejectedEvents.SelectRejectedEvent(ctx, eventID)
	if err != nil {
		return "", fmt.Errorf("persistence.RejectedReason: %w", notFoundIfNoRows(err))
	}
	return reason, nil
}

// TxnIDForEvent implements persistence.RoomReader.
func (s *Store) TxnIDForEvent(ctx context.Context, eventID, userID, deviceID string) (string, error) {
	id, err := s.txnIDs.SelectTxnIDForEvent(ctx, eventID, userID, deviceID)
	if err != nil {
		return "", fmt.Errorf("persistence.TxnIDForEvent: %w", notFoundIfNoRows(err))
	}
	return id, nil
}

// CommitEvents implements persistence.RoomStore: one transaction writes the
// events, the state blocks and snapshots, the head, the projections and the
// txn mappings, or nothing at all.
func (s *Store) CommitEvents(ctx context.Context, req persistence.CommitRequest) (*persistence.CommitResult, error) {
	if err := checkCommitRequest(&req); err != nil {
		return nil, fmt.Errorf("persistence.CommitEvents: %w", err)
	}
	c := &commit{
		s: s, req: &req,
		typeNIDs: map[string]int64{}, keyNIDs: map[string]int64{},
		newTypes: map[string]int64{}, newKeys: map[string]int64{},
	}
	committed := false
	// Deferred so that even a panic cannot leave positions pending, which
	// would hold MaxStreamPos back for good.
	defer func() { s.streams.finish(c.positions, committed) }()
	err := s.writeTx(ctx, func(tx *sql.Tx) error { return c.run(ctx, tx) })
	committed = err == nil
	if err != nil {
		return nil, fmt.Errorf("persistence.CommitEvents: %w", err)
	}
	// Only now are the NIDs this transaction assigned known to exist.
	s.types.learn(c.newTypes)
	s.keys.learn(c.newKeys)
	res := &persistence.CommitResult{
		RoomNID:   c.room,
		EventNIDs: c.eventNIDs,
		StreamPos: c.eventPos,
		Snapshot:  c.snapshot,
		Blocks:    c.blocks,
		Epoch:     c.epoch,
	}
	if n := len(c.positions); n > 0 {
		res.LastStream = c.positions[n-1]
	}
	return res, nil
}

func checkCommitRequest(req *persistence.CommitRequest) error {
	if req.NewRoom != nil {
		switch {
		case req.NewRoom.RoomID == "" || req.NewRoom.Version == "":
			return errors.New("a new room needs an ID and a version")
		case req.RoomNID != 0:
			return errors.New("a new room cannot have a room NID yet")
		case req.Snapshot != 0 || len(req.Blocks) > 0:
			return errors.New("a new room has no state before its first batch")
		}
	} else if req.RoomNID <= 0 {
		return errors.New("neither a new room nor a room NID")
	}
	for i := range req.Events {
		ev := &req.Events[i]
		switch {
		case ev.EventID == "" || ev.Type == "" || len(ev.JSON) == 0:
			return fmt.Errorf("event %d of the batch lacks its ID, type or JSON", i)
		case ev.Membership != "" && ev.StateKey == nil:
			return fmt.Errorf("event %s has a membership but no state key", ev.EventID)
		case ev.Promote && ev.Outlier:
			return fmt.Errorf("event %s cannot be promoted to an outlier", ev.EventID)
		case ev.Txn != nil && (ev.Txn.UserID == "" || ev.Txn.TxnID == ""):
			return fmt.Errorf("event %s has an incomplete txn key", ev.EventID)
		case checkDestinations(ev.Destinations) != nil:
			return fmt.Errorf("event %s has an empty destination", ev.EventID)
		}
	}
	return nil
}

// commit is one CommitEvents call in progress.
type commit struct {
	s   *Store
	req *persistence.CommitRequest

	room     persistence.RoomNID
	epoch    int64
	snapshot persistence.StateSnapshotNID
	blocks   []persistence.StateBlockNID

	typeNIDs, keyNIDs map[string]int64 // every NID the batch uses
	newTypes, newKeys map[string]int64 // those not from the cache

	eventNIDs []persistence.EventNID
	eventPos  []persistence.StreamPos // each event's, outliers' included
	positions []persistence.StreamPos // allocated, whether or not committed
	// inBatch places the batch's events for the state resets naming them.
	inBatch map[string]insertedEvent
}

func (c *commit) run(ctx context.Context, tx *sql.Tx) error {
	s, req := c.s, c.req
	if err := c.fence(ctx, tx); err != nil {
		return err
	}
	if err := c.resolveNIDs(ctx, tx); err != nil {
		return err
	}
	for i := range req.Events {
		ev := &req.Events[i]
		typeNID := persistence.EventTypeNID(c.typeNIDs[ev.Type])
		var keyNID persistence.StateKeyNID
		if ev.StateKey != nil {
			keyNID = persistence.StateKeyNID(c.keyNIDs[*ev.StateKey])
		}
		if ev.Outlier {
			if err := c.insertOutlier(ctx, tx, ev, typeNID, keyNID); err != nil {
				return fmt.Errorf("insert outlier %s: %w", ev.EventID, err)
			}
			continue
		}
		if ev.StateBefore != nil {
			if err := c.resetState(ctx, tx, ev.StateBefore); err != nil {
				return fmt.Errorf("state before %s: %w", ev.EventID, err)
			}
		}
		ins, err := c.insertEvent(ctx, tx, ev, typeNID, keyNID)
		if err != nil {
			return fmt.Errorf("insert event %s: %w", ev.EventID, err)
		}
		if ev.StateKey != nil {
			entry := stateEntry{stateKeyTuple{typeNID, keyNID}, ins.NID}
			if err := c.advanceState(ctx, tx, entry); err != nil {
				return fmt.Errorf("state after %s: %w", ev.EventID, err)
			}
			if err := s.currentState.UpsertCurrentState(ctx, tx, c.room, entry); err != nil {
				return fmt.Errorf("current state after %s: %w", ev.EventID, err)
			}
		}
		if ev.Membership != "" {
			if err := s.memberships.UpsertMembership(ctx, tx, c.room, *ev.StateKey, ev.Membership, ins.NID, ins.StreamPos); err != nil {
				return fmt.Errorf("membership after %s: %w", ev.EventID, err)
			}
		}
		if ev.Txn != nil {
			if err := s.txnIDs.InsertTxnID(ctx, tx, *ev.Txn, ev.EventID, ins.NID); err != nil {
				return fmt.Errorf("txn ID of %s: %w", ev.EventID, err)
			}
		}
		if ev.Redacts != "" {
			if err := s.redactions.InsertRedaction(ctx, tx, ev.Redacts, int64(ins.NID)); err != nil {
				return fmt.Errorf("redaction by %s: %w", ev.EventID, err)
			}
			if err := s.search.DeleteSearchText(ctx, tx, ev.Redacts); err != nil {
				return fmt.Errorf("unindex %s redacted by %s: %w", ev.Redacts, ev.EventID, err)
			}
		}
		if key, text, ok := searchTextOf(ev.Type, ev.StateKey, ev.JSON); ok {
			if err := s.search.InsertSearchText(ctx, tx, ins.NID, c.room, key, ins.StreamPos, text); err != nil {
				return fmt.Errorf("index text of %s: %w", ev.EventID, err)
			}
		}
		if relType, parent, ok := relationOf(ev.JSON); ok {
			if err := s.relations.InsertRelation(ctx, tx, ins.NID, c.room, parent, relType, ev.Type, ins.StreamPos); err != nil {
				return fmt.Errorf("relation of %s: %w", ev.EventID, err)
			}
		}
		if err := s.federationQueue.InsertQueuedPDUs(ctx, tx, ev.Destinations, ins.NID); err != nil {
			return fmt.Errorf("queue %s for federation: %w", ev.EventID, err)
		}
	}
	for _, r := range req.Rejected {
		if err := s.rejectedEvents.InsertRejectedEvent(ctx, tx, c.room, r); err != nil {
			return fmt.Errorf("rejection of %s: %w", r.EventID, err)
		}
	}
	if req.StateAfter != nil {
		if err := c.resetState(ctx, tx, req.StateAfter); err != nil {
			return fmt.Errorf("state after the batch: %w", err)
		}
	}
	if req.NewRoom != nil {
		return s.rooms.InsertRoomHead(ctx, tx, &persistence.RoomHead{
			RoomNID: c.room, Snapshot: c.snapshot, Blocks: c.blocks,
			Extremities: req.Extremities, Depth: req.Depth, Epoch: c.epoch,
		})
	}
	if c.snapshot != req.Snapshot {
		return s.rooms.UpdateRoomHeadState(ctx, tx, c.room, c.snapshot, c.blocks)
	}
	return nil
}

// fence creates the room, or checks that the committer still owns it (the
// compare-and-set of the epoch that also writes the new extremities and
// depth) and that the batch builds on the head's state.
func (c *commit) fence(ctx context.Context, tx *sql.Tx) error {
	s, req := c.s, c.req
	if req.NewRoom != nil {
		nid, created, err := s.rooms.InsertRoom(ctx, tx, req.NewRoom.RoomID, req.NewRoom.Version)
		if err != nil {
			return fmt.Errorf("insert room: %w", err)
		}
		if !created {
			return fmt.Errorf("room %s: %w", req.NewRoom.RoomID, persistence.ErrRoomExists)
		}
		c.room, c.epoch = nid, 1
		return nil
	}
	snapshot, blocks, ok, err := s.rooms.AdvanceRoomHead(ctx, tx, req.RoomNID, req.Epoch, req.Extremities, req.Depth)
	if err != nil {
		return fmt.Errorf("advance head: %w", err)
	}
	if !ok {
		exists, err := s.rooms.SelectRoomHeadExists(ctx, tx, req.RoomNID)
		if err != nil {
			return fmt.Errorf("select head: %w", err)
		}
		if !exists {
			return fmt.Errorf("room NID %d: %w", req.RoomNID, persistence.ErrNotFound)
		}
		return fmt.Errorf("room NID %d, epoch %d: %w", req.RoomNID, req.Epoch, persistence.ErrFenced)
	}
	if snapshot != req.Snapshot {
		return fmt.Errorf("room NID %d: the batch builds on snapshot %d but the head is at %d", req.RoomNID, req.Snapshot, snapshot)
	}
	if len(req.Blocks) > 0 && !slices.Equal(req.Blocks, blocks) {
		return fmt.Errorf("room NID %d: the batch's blocks %v are not the head's %v", req.RoomNID, req.Blocks, blocks)
	}
	c.room, c.epoch, c.snapshot, c.blocks = req.RoomNID, req.Epoch, snapshot, blocks
	return nil
}

// resolveNIDs finds or assigns the NIDs of the batch's types and state keys,
// in sorted order so that concurrent commits assigning the same new ones
// wait for each other instead of deadlocking.
func (c *commit) resolveNIDs(ctx context.Context, tx *sql.Tx) error {
	var types, keys []string
	refs := c.req.StateAfter
	for i := range c.req.Events {
		ev := &c.req.Events[i]
		types = append(types, ev.Type)
		if ev.StateKey != nil {
			keys = append(keys, *ev.StateKey)
		}
		refs = append(slices.Clip(refs), ev.StateBefore...)
	}
	for _, ref := range refs {
		types, keys = append(types, ref.Type), append(keys, ref.StateKey)
	}
	sort.Strings(types)
	sort.Strings(keys)
	for _, t := range slices.Compact(types) {
		if nid, ok := c.s.types.get(t); ok {
			c.typeNIDs[t] = nid
			continue
		}
		nid, err := c.s.eventTypes.InsertOrSelectEventTypeNID(ctx, tx, t)
		if err != nil {
			return err
		}
		c.typeNIDs[t], c.newTypes[t] = int64(nid), int64(nid)
	}
	for _, k := range slices.Compact(keys) {
		if nid, ok := c.s.keys.get(k); ok {
			c.keyNIDs[k] = nid
			continue
		}
		nid, err := c.s.eventStateKeys.InsertOrSelectStateKeyNID(ctx, tx, k)
		if err != nil {
			return err
		}
		c.keyNIDs[k], c.newKeys[k] = int64(nid), int64(nid)
	}
	return nil
}

// insertEvent stores an event whose state before it is the current
// snapshot, telling the stream tracker about the position it takes.
func (c *commit) insertEvent(ctx context.Context, tx *sql.Tx, ev *persistence.NewEvent, typeNID persistence.EventTypeNID, keyNID persistence.StateKeyNID) (insertedEvent, error) {
	alloc := c.s.streams.beginAlloc()
	var ins insertedEvent
	var err error
	if ev.Promote {
		ins, err = c.s.events.PromoteOutlier(ctx, tx, ev.EventID, c.snapshot)
		if errors.Is(err, sql.ErrNoRows) {
			err = fmt.Errorf("event %s is not stored as an outlier", ev.EventID)
		}
	} else {
		ins, err = c.s.events.InsertEvent(ctx, tx, c.room, ev, typeNID, keyNID, c.snapshot)
	}
	c.s.streams.endAlloc(alloc, ins.StreamPos, err == nil)
	if err != nil {
		return ins, err
	}
	c.positions = append(c.positions, ins.StreamPos)
	c.placed(ev.EventID, ins)
	return ins, nil
}

// insertOutlier stores an event outside the timeline: no stream position
// to track, no state, no projection.
func (c *commit) insertOutlier(ctx context.Context, tx *sql.Tx, ev *persistence.NewEvent, typeNID persistence.EventTypeNID, keyNID persistence.StateKeyNID) error {
	ins, err := c.s.events.InsertOutlier(ctx, tx, c.room, ev, typeNID, keyNID)
	if err != nil {
		return err
	}
	c.placed(ev.EventID, ins)
	return nil
}

func (c *commit) placed(eventID string, ins insertedEvent) {
	c.eventNIDs = append(c.eventNIDs, ins.NID)
	c.eventPos = append(c.eventPos, ins.StreamPos)
	if c.inBatch == nil {
		c.inBatch = map[string]insertedEvent{}
	}
	c.inBatch[eventID] = ins
}

// resetState makes refs the room's whole state from here on: one compacted
// block and a snapshot of it, and the current state and membership
// projections brought to it tuple by tuple.
func (c *commit) resetState(ctx context.Context, tx *sql.Tx, refs []persistence.StateRef) error {
	s := c.s
	old := map[stateKeyTuple]persistence.EventNID{}
	if len(c.blocks) > 0 {
		var err error
		if old, err = s.resolveState(ctx, tx, c.blocks); err != nil {
			return err
		}
	}
	state := make(map[stateKeyTuple]persistence.EventNID, len(refs))
	for _, ref := range refs {
		ins, err := c.place(ctx, tx, ref.EventID)
		if err != nil {
			return err
		}
		tuple := stateKeyTuple{persistence.EventTypeNID(c.typeNIDs[ref.Type]), persistence.StateKeyNID(c.keyNIDs[ref.StateKey])}
		state[tuple] = ins.NID
		if old[tuple] == ins.NID {
			continue
		}
		if err := s.currentState.UpsertCurrentState(ctx, tx, c.room, stateEntry{tuple, ins.NID}); err != nil {
			return err
		}
		if ref.Type == "m.room.member" && ref.Membership != "" {
			if err := s.memberships.UpsertMembership(ctx, tx, c.room, ref.StateKey, ref.Membership, ins.NID, ins.StreamPos); err != nil {
				return err
			}
		}
	}
	for tuple := range old {
		if _, kept := state[tuple]; !kept {
			if err := s.currentState.DeleteCurrentState(ctx, tx, c.room, tuple); err != nil {
				return err
			}
		}
	}
	if len(state) == 0 {
		c.snapshot, c.blocks = 0, nil // no state at all: snapshot 0
		return nil
	}
	block, err := s.stateBlocks.InsertStateBlock(ctx, tx, sortedEntries(state))
	if err != nil {
		return fmt.Errorf("insert state block: %w", err)
	}
	blocks := []persistence.StateBlockNID{block}
	snapshot, err := s.stateSnapshots.InsertStateSnapshot(ctx, tx, c.room, blocks)
	if err != nil {
		return fmt.Errorf("insert snapshot: %w", err)
	}
	c.snapshot, c.blocks = snapshot, blocks
	return nil
}

// place finds an event a state reset names: in the batch, or stored in
// this room.
func (c *commit) place(ctx context.Context, tx *sql.Tx, eventID string) (insertedEvent, error) {
	if ins, ok := c.inBatch[eventID]; ok {
		return ins, nil
	}
	ins, room, err := c.s.events.SelectEventPlace(ctx, tx, eventID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ins, fmt.Errorf("state names event %s, which is not stored", eventID)
	case err != nil:
		return ins, err
	case room != c.room:
		return ins, fmt.Errorf("state names event %s of another room", eventID)
	}
	return ins, nil
}

// advanceState makes a new snapshot: the current blocks and a new block
// with the entry, or, when that would exceed MaxSnapshotBlocks, a single
// block with the whole resolved state.
func (c *commit) advanceState(ctx context.Context, tx *sql.Tx, entry stateEntry) error {
	s := c.s
	var blocks []persistence.StateBlockNID
	if len(c.blocks)+1 > persistence.MaxSnapshotBlocks {
		state, err := s.resolveState(ctx, tx, c.blocks)
		if err != nil {
			return err
		}
		state[entry.stateKeyTuple] = entry.Event
		block, err := s.stateBlocks.InsertStateBlock(ctx, tx, sortedEntries(state))
		if err != nil {
			return fmt.Errorf("compact state: %w", err)
		}
		blocks = []persistence.StateBlockNID{block}
	} else {
		block, err := s.stateBlocks.InsertStateBlockWithOneEntry(ctx, tx, entry)
		if err != nil {
			return fmt.Errorf("insert state block: %w", err)
		}
		blocks = append(slices.Clip(c.blocks), block)
	}
	snapshot, err := s.stateSnapshots.InsertStateSnapshot(ctx, tx, c.room, blocks)
	if err != nil {
		return fmt.Errorf("insert snapshot: %w", err)
	}
	c.snapshot, c.blocks = snapshot, blocks
	return nil
}

func sortedEntries(state map[stateKeyTuple]persistence.EventNID) []stateEntry {
	entries := make([]stateEntry, 0, len(state))
	for t, ev := range state {
		entries = append(entries, stateEntry{t, ev})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Key < b.Key
	})
	return entries
}
