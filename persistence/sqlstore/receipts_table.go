package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// receipts: each user's latest receipt per room, type and thread,
// positioned on the shared stream.

const upsertReceiptSQL = `
INSERT INTO receipts (room_nid, user_id, receipt_type, thread_id, event_id, ts, stream_pos)
VALUES ($1, $2, $3, $4, $5, $6, {next_stream_pos})
ON CONFLICT (room_nid, user_id, receipt_type, thread_id) DO UPDATE
SET event_id = excluded.event_id, ts = excluded.ts, stream_pos = excluded.stream_pos
RETURNING stream_pos`

const selectReceiptsBetweenSQL = `
SELECT rc.room_nid, r.room_id, rc.user_id, rc.receipt_type, rc.thread_id, rc.event_id, rc.ts, rc.stream_pos
FROM receipts rc JOIN rooms r ON r.room_nid = rc.room_nid
WHERE IN_NIDS(rc.room_nid, $1) AND rc.stream_pos > $2 AND rc.stream_pos <= $3
ORDER BY rc.stream_pos`

const selectLatestReadReceiptSQL = `
SELECT event_id FROM receipts
WHERE room_nid = $1 AND user_id = $2 AND receipt_type IN ('m.read', 'm.read.private') AND thread_id IN ('', 'main')
ORDER BY stream_pos DESC LIMIT 1`

type receiptsTable struct {
	d                                 *Dialect
	upsert, selectBetween, selectRead *sql.Stmt
}

func prepareReceiptsTable(p *preparer) *receiptsTable {
	return &receiptsTable{
		d:             p.d,
		upsert:        p.prepare(upsertReceiptSQL),
		selectBetween: p.prepare(selectReceiptsBetweenSQL),
		selectRead:    p.prepare(selectLatestReadReceiptSQL),
	}
}

// UpsertReceipt stores the receipt and returns the position it took.
func (t *receiptsTable) UpsertReceipt(ctx context.Context, tx *sql.Tx, r *persistence.Receipt) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := txStmt(ctx, tx, t.upsert).QueryRowContext(ctx, r.RoomNID, r.UserID, r.Type, r.ThreadID, r.EventID, r.TS).Scan(&pos)
	return pos, err
}

func (t *receiptsTable) SelectReceiptsBetween(ctx context.Context, rooms []persistence.RoomNID, from, to persistence.StreamPos) ([]persistence.Receipt, error) {
	rows, err := t.selectBetween.QueryContext(ctx, t.d.formatRoomNIDs(rooms), from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.Receipt
	for rows.Next() {
		var r persistence.Receipt
		if err := rows.Scan(&r.RoomNID, &r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.TS, &r.StreamPos); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
