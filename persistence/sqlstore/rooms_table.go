package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// rooms: room ID → room NID and version, never changed once written.
// room_heads: what an activation resumes from, and its fence: the current
// snapshot and its blocks, the forward extremities (a JSON array), the
// depth and the epoch of the activation that owns the room.

const insertRoomSQL = `
INSERT INTO rooms (room_id, room_version) VALUES ($1, $2)
ON CONFLICT (room_id) DO NOTHING
RETURNING room_nid`

const selectRoomInfoSQL = "SELECT room_nid, room_version FROM rooms WHERE room_id = $1"

const insertRoomHeadSQL = `
INSERT INTO room_heads (room_nid, snapshot_nid, block_nids, extremities, depth, epoch)
VALUES ($1, $2, $3, $4, $5, $6)`

// claimRoomHeadSQL starts an activation.
const claimRoomHeadSQL = `
UPDATE room_heads SET epoch = epoch + 1 WHERE room_nid = $1
RETURNING snapshot_nid, block_nids, extremities, depth, epoch`

// advanceRoomHeadSQL is the fence: it changes the head only while the
// committer's epoch is the head's, and tells the state the batch builds on.
const advanceRoomHeadSQL = `
UPDATE room_heads SET extremities = $3, depth = $4
WHERE room_nid = $1 AND epoch = $2
RETURNING snapshot_nid, block_nids`

const updateRoomHeadStateSQL = "UPDATE room_heads SET snapshot_nid = $2, block_nids = $3 WHERE room_nid = $1"

const selectRoomHeadExistsSQL = "SELECT 1 FROM room_heads WHERE room_nid = $1"

// selectRoomHeadSQL reads a head without claiming the room.
const selectRoomHeadSQL = `
SELECT r.room_nid, r.room_version, h.snapshot_nid, h.block_nids, h.extremities, h.depth, h.epoch
FROM rooms r JOIN room_heads h ON h.room_nid = r.room_nid
WHERE r.room_id = $1`

const selectRoomIDsSQL = "SELECT room_id FROM rooms WHERE room_id > $1 ORDER BY room_id LIMIT $2"

type roomsTable struct {
	d                    *Dialect
	insertRoom           *sql.Stmt
	selectRoomInfo       *sql.Stmt
	insertRoomHead       *sql.Stmt
	claimRoomHead        *sql.Stmt
	advanceRoomHead      *sql.Stmt
	updateRoomHeadState  *sql.Stmt
	selectRoomHeadExists *sql.Stmt
	selectRoomHead       *sql.Stmt
	selectRoomIDs        *sql.Stmt
}

func prepareRoomsTable(p *preparer) *roomsTable {
	return &roomsTable{
		d:                    p.d,
		insertRoom:           p.prepare(insertRoomSQL),
		selectRoomInfo:       p.prepare(selectRoomInfoSQL),
		insertRoomHead:       p.prepare(insertRoomHeadSQL),
		claimRoomHead:        p.prepare(claimRoomHeadSQL),
		advanceRoomHead:      p.prepare(advanceRoomHeadSQL),
		updateRoomHeadState:  p.prepare(updateRoomHeadStateSQL),
		selectRoomHeadExists: p.prepare(selectRoomHeadExistsSQL),
		selectRoomHead:       p.prepare(selectRoomHeadSQL),
		selectRoomIDs:        p.prepare(selectRoomIDsSQL),
	}
}

// InsertRoom reports false when the room ID is taken.
func (t *roomsTable) InsertRoom(ctx context.Context, tx *sql.Tx, roomID, version string) (persistence.RoomNID, bool, error) {
	var nid persistence.RoomNID
	err := txStmt(ctx, tx, t.insertRoom).QueryRowContext(ctx, roomID, version).Scan(&nid)
	if err == sql.ErrNoRows {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if nid <= 0 {
		return 0, false, fmt.Errorf("rooms: bad room NID %d", nid)
	}
	return nid, true, nil
}

// SelectRoomInfo returns sql.ErrNoRows for an unknown room.
func (t *roomsTable) SelectRoomInfo(ctx context.Context, tx *sql.Tx, roomID string) (persistence.RoomNID, string, error) {
	var nid persistence.RoomNID
	var version string
	err := txStmt(ctx, tx, t.selectRoomInfo).QueryRowContext(ctx, roomID).Scan(&nid, &version)
	return nid, version, err
}

// InsertRoomHead writes the head of a new room.
func (t *roomsTable) InsertRoomHead(ctx context.Context, tx *sql.Tx, head *persistence.RoomHead) error {
	ext, err := encodeExtremities(head.Extremities)
	if err != nil {
		return err
	}
	_, err = txStmt(ctx, tx, t.insertRoomHead).ExecContext(ctx, head.RoomNID, head.Snapshot,
		t.d.formatNIDs(blockNIDsToInt64(head.Blocks)), ext, head.Depth, head.Epoch)
	return err
}

// ClaimRoomHead bumps the epoch and returns the head; sql.ErrNoRows when
// the room has no head.
func (t *roomsTable) ClaimRoomHead(ctx context.Context, tx *sql.Tx, room persistence.RoomNID) (*persistence.RoomHead, error) {
	head := &persistence.RoomHead{RoomNID: room}
	var blocks, ext string
	err := txStmt(ctx, tx, t.claimRoomHead).QueryRowContext(ctx, room).Scan(
		&head.Snapshot, &blocks, &ext, &head.Depth, &head.Epoch)
	if err != nil {
		return nil, err
	}
	if head.Blocks, err = parseBlockNIDs(blocks); err != nil {
		return nil, fmt.Errorf("room %d head: %w", room, err)
	}
	if err := json.Unmarshal([]byte(ext), &head.Extremities); err != nil {
		return nil, fmt.Errorf("room %d head: malformed extremities: %w", room, err)
	}
	return head, nil
}

// AdvanceRoomHead sets the extremities and depth if epoch is still the
// head's, returning the state the head had; ok is false when fenced off (or
// when the room has no head).
func (t *roomsTable) AdvanceRoomHead(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, epoch int64, extremities []string, depth int64) (snapshot persistence.StateSnapshotNID, blocks []persistence.StateBlockNID, ok bool, err error) {
	ext, err := encodeExtremities(extremities)
	if err != nil {
		return 0, nil, false, err
	}
	var blockList string
	err = txStmt(ctx, tx, t.advanceRoomHead).QueryRowContext(ctx, room, epoch, ext, depth).Scan(&snapshot, &blockList)
	if err == sql.ErrNoRows {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, err
	}
	if blocks, err = parseBlockNIDs(blockList); err != nil {
		return 0, nil, false, fmt.Errorf("room %d head: %w", room, err)
	}
	return snapshot, blocks, true, nil
}

// UpdateRoomHeadState points the head at a new snapshot.
func (t *roomsTable) UpdateRoomHeadState(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, snapshot persistence.StateSnapshotNID, blocks []persistence.StateBlockNID) error {
	_, err := txStmt(ctx, tx, t.updateRoomHeadState).ExecContext(ctx, room, snapshot, t.d.formatNIDs(blockNIDsToInt64(blocks)))
	return err
}

// SelectRoomHeadExists reports whether the room has a head.
func (t *roomsTable) SelectRoomHeadExists(ctx context.Context, tx *sql.Tx, room persistence.RoomNID) (bool, error) {
	var one int
	err := txStmt(ctx, tx, t.selectRoomHeadExists).QueryRowContext(ctx, room).Scan(&one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return err == nil, err
}

// SelectRoomHead returns the head of a room, leaving its epoch alone;
// sql.ErrNoRows for an unknown room or one without a head.
func (t *roomsTable) SelectRoomHead(ctx context.Context, roomID string) (*persistence.RoomHead, error) {
	head := &persistence.RoomHead{RoomID: roomID}
	var blocks, ext string
	err := t.selectRoomHead.QueryRowContext(ctx, roomID).Scan(
		&head.RoomNID, &head.Version, &head.Snapshot, &blocks, &ext, &head.Depth, &head.Epoch)
	if err != nil {
		return nil, err
	}
	if head.Blocks, err = parseBlockNIDs(blocks); err != nil {
		return nil, fmt.Errorf("room %s head: %w", roomID, err)
	}
	if err := json.Unmarshal([]byte(ext), &head.Extremities); err != nil {
		return nil, fmt.Errorf("room %s head: malformed extremities: %w", roomID, err)
	}
	return head, nil
}

// SelectRoomIDs returns up to limit room IDs after the given one, in order.
func (t *roomsTable) SelectRoomIDs(ctx context.Context, after string, limit int) ([]string, error) {
	rows, err := t.selectRoomIDs.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func encodeExtremities(ext []string) (string, error) {
	if ext == nil {
		ext = []string{}
	}
	b, err := json.Marshal(ext)
	if err != nil {
		return "", fmt.Errorf("encode extremities: %w", err)
	}
	return string(b), nil
}

func blockNIDsToInt64(blocks []persistence.StateBlockNID) []int64 {
	out := make([]int64, len(blocks))
	for i, b := range blocks {
		out[i] = int64(b)
	}
	return out
}

func parseBlockNIDs(s string) ([]persistence.StateBlockNID, error) {
	nids, err := parseNIDs(s)
	if err != nil {
		return nil, err
	}
	if len(nids) > persistence.MaxSnapshotBlocks {
		return nil, fmt.Errorf("%d blocks, more than %d", len(nids), persistence.MaxSnapshotBlocks)
	}
	out := make([]persistence.StateBlockNID, len(nids))
	for i, n := range nids {
		out[i] = persistence.StateBlockNID(n)
	}
	return out, nil
}
