package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// account_data: a user's account data, global (room_id '') and per room,
// one row per type, positioned on the shared stream.

const upsertAccountDataSQL = `
INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
VALUES ($1, $2, $3, $4, {next_stream_pos})
ON CONFLICT (user_id, room_id, data_type) DO UPDATE
SET content = excluded.content, stream_pos = excluded.stream_pos
RETURNING stream_pos`

const selectAccountDataSQL = `
SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3`

const selectAccountDataBetweenSQL = `
SELECT room_id, data_type, content, stream_pos FROM account_data
WHERE user_id = $1 AND stream_pos > $2 AND stream_pos <= $3
ORDER BY stream_pos`

type accountDataTable struct {
	upsert, selectOne, selectBetween *sql.Stmt
}

func prepareAccountDataTable(p *preparer) *accountDataTable {
	return &accountDataTable{
		upsert:        p.prepare(upsertAccountDataSQL),
		selectOne:     p.prepare(selectAccountDataSQL),
		selectBetween: p.prepare(selectAccountDataBetweenSQL),
	}
}

// UpsertAccountData stores the entry and returns the position it took.
func (t *accountDataTable) UpsertAccountData(ctx context.Context, tx *sql.Tx, userID string, d *persistence.AccountData) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := txStmt(ctx, tx, t.upsert).QueryRowContext(ctx, userID, d.RoomID, d.Type, string(d.Content)).Scan(&pos)
	return pos, err
}

// SelectAccountData returns sql.ErrNoRows when there is no such entry.
func (t *accountDataTable) SelectAccountData(ctx context.Context, userID, roomID, dataType string) (json.RawMessage, error) {
	var content string
	err := t.selectOne.QueryRowContext(ctx, userID, roomID, dataType).Scan(&content)
	return json.RawMessage(content), err
}

func (t *accountDataTable) SelectAccountDataBetween(ctx context.Context, userID string, from, to persistence.StreamPos) ([]persistence.AccountData, error) {
	rows, err := t.selectBetween.QueryContext(ctx, userID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.AccountData
	for rows.Next() {
		var d persistence.AccountData
		var content string
		if err := rows.Scan(&d.RoomID, &d.Type, &content, &d.StreamPos); err != nil {
			return nil, err
		}
		d.Content = json.RawMessage(content)
		out = append(out, d)
	}
	return out, rows.Err()
}
