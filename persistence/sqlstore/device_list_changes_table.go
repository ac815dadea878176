package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// device_list_changes: that a user's devices or their keys changed, on the
// shared stream, so that those who share a room refetch the user's keys.

const insertDeviceListChangeSQL = `
INSERT INTO device_list_changes (user_id, stream_pos) VALUES ($1, {next_stream_pos})
RETURNING stream_pos`

// selectDeviceListChangesSQL: the users, among $1 and those joined to a
// room $1 is joined to, whose devices changed in ($2, $3].
const selectDeviceListChangesSQL = `
SELECT DISTINCT c.user_id FROM device_list_changes c
WHERE c.stream_pos > $2 AND c.stream_pos <= $3 AND (c.user_id = $1 OR EXISTS (
	SELECT 1 FROM memberships mine JOIN memberships theirs ON theirs.room_nid = mine.room_nid
	WHERE mine.user_id = $1 AND mine.membership = 'join'
	  AND theirs.user_id = c.user_id AND theirs.membership = 'join'))
ORDER BY c.user_id`

// selectLatestDeviceListChangeSQL: the position of the user's latest
// change, 0 for none.
const selectLatestDeviceListChangeSQL = `
SELECT COALESCE(MAX(stream_pos), 0) FROM device_list_changes WHERE user_id = $1`

type deviceListChangesTable struct {
	insert, selectBetween, selectLatest *sql.Stmt
}

func prepareDeviceListChangesTable(p *preparer) *deviceListChangesTable {
	return &deviceListChangesTable{
		insert:        p.prepare(insertDeviceListChangeSQL),
		selectBetween: p.prepare(selectDeviceListChangesSQL),
		selectLatest:  p.prepare(selectLatestDeviceListChangeSQL),
	}
}

func (t *deviceListChangesTable) InsertDeviceListChange(ctx context.Context, tx *sql.Tx, userID string) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := txStmt(ctx, tx, t.insert).QueryRowContext(ctx, userID).Scan(&pos)
	return pos, err
}

func (t *deviceListChangesTable) SelectDeviceListChanges(ctx context.Context, userID string, from, to persistence.StreamPos) ([]string, error) {
	rows, err := t.selectBetween.QueryContext(ctx, userID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (t *deviceListChangesTable) SelectLatestDeviceListChange(ctx context.Context, userID string) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := t.selectLatest.QueryRowContext(ctx, userID).Scan(&pos)
	return pos, err
}
