package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// state_snapshots: snapshot NID → the room and the ordered list of up to
// persistence.MaxSnapshotBlocks block NIDs; a later block overrides an
// earlier one for the same (type, state key). Written once, never changed.

const insertStateSnapshotSQL = `
INSERT INTO state_snapshots (room_nid, block_nids) VALUES ($1, $2)
RETURNING snapshot_nid`

const selectStateSnapshotBlocksSQL = "SELECT block_nids FROM state_snapshots WHERE snapshot_nid = $1"

type stateSnapshotsTable struct {
	d                         *Dialect
	insertStateSnapshot       *sql.Stmt
	selectStateSnapshotBlocks *sql.Stmt
}

func prepareStateSnapshotsTable(p *preparer) *stateSnapshotsTable {
	return &stateSnapshotsTable{
		d:                         p.d,
		insertStateSnapshot:       p.prepare(insertStateSnapshotSQL),
		selectStateSnapshotBlocks: p.prepare(selectStateSnapshotBlocksSQL),
	}
}

func (t *stateSnapshotsTable) InsertStateSnapshot(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, blocks []persistence.StateBlockNID) (persistence.StateSnapshotNID, error) {
	var nid persistence.StateSnapshotNID
	err := txStmt(ctx, tx, t.insertStateSnapshot).QueryRowContext(ctx, room, t.d.formatNIDs(blockNIDsToInt64(blocks))).Scan(&nid)
	if err != nil {
		return 0, err
	}
	if nid <= 0 {
		return 0, fmt.Errorf("state_snapshots: bad snapshot NID %d assigned", nid)
	}
	return nid, nil
}

// SelectStateSnapshotBlocks returns sql.ErrNoRows for an unknown snapshot.
func (t *stateSnapshotsTable) SelectStateSnapshotBlocks(ctx context.Context, snapshot persistence.StateSnapshotNID) ([]persistence.StateBlockNID, error) {
	var list string
	if err := t.selectStateSnapshotBlocks.QueryRowContext(ctx, snapshot).Scan(&list); err != nil {
		return nil, err
	}
	blocks, err := parseBlockNIDs(list)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", snapshot, err)
	}
	return blocks, nil
}
