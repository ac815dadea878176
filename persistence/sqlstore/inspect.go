package sqlstore

import (
	"context"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// Reads for tools that check a room's storage against its events: none of
// them claims a room or writes.

// RoomIDs implements persistence.RoomInspector.
func (s *Store) RoomIDs(ctx context.Context, after string, limit int) ([]string, error) {
	if limit < 1 {
		return nil, nil
	}
	ids, err := s.rooms.SelectRoomIDs(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("persistence.RoomIDs: %w", err)
	}
	return ids, nil
}

// RoomHead implements persistence.RoomInspector.
func (s *Store) RoomHead(ctx context.Context, roomID string) (*persistence.RoomHead, error) {
	head, err := s.rooms.SelectRoomHead(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("persistence.RoomHead: %w", notFoundIfNoRows(err))
	}
	return head, nil
}

// SnapshotBlocks implements persistence.RoomInspector.
func (s *Store) SnapshotBlocks(ctx context.Context, snapshot persistence.StateSnapshotNID) ([]persistence.StateBlockNID, error) {
	if snapshot == 0 {
		return nil, nil
	}
	blocks, err := s.stateSnapshots.SelectStateSnapshotBlocks(ctx, snapshot)
	if err != nil {
		return nil, fmt.Errorf("persistence.SnapshotBlocks: snapshot %d: %w", snapshot, notFoundIfNoRows(err))
	}
	return blocks, nil
}

// StateBlockEntries implements persistence.RoomInspector.
func (s *Store) StateBlockEntries(ctx context.Context, blocks []persistence.StateBlockNID) ([]persistence.StateBlockEntry, error) {
	if len(blocks) == 0 {
		return nil, nil
	}
	entries, err := s.stateBlocks.SelectStateBlockEntriesWithIDs(ctx, blocks)
	if err != nil {
		return nil, fmt.Errorf("persistence.StateBlockEntries: %w", err)
	}
	return entries, nil
}

// RoomMemberships implements persistence.RoomInspector.
func (s *Store) RoomMemberships(ctx context.Context, room persistence.RoomNID) ([]persistence.Membership, error) {
	ms, err := s.memberships.SelectRoomMemberships(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("persistence.RoomMemberships: %w", err)
	}
	return ms, nil
}
