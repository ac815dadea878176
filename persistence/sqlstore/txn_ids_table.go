package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// txn_ids: (user, device, client transaction ID) → the event it sent, for
// idempotent sends; written by the commit of that event. The event is
// recorded by ID (what LookupTxn answers) and by NID (what TxnIDForEvent
// finds it by: an index on NIDs only appends, where one on event IDs, which
// are hashes, would take every send at a random place).

const insertTxnIDSQL = `
INSERT INTO txn_ids (user_id, device_id, txn_id, event_id, event_nid)
VALUES ($1, $2, $3, $4, $5)`

const selectTxnEventIDSQL = "SELECT event_id FROM txn_ids WHERE user_id = $1 AND device_id = $2 AND txn_id = $3"

// selectTxnIDForEventSQL finds the transaction ID a device sent an event
// with, so that /sync can echo it to that device (unsigned.transaction_id).
const selectTxnIDForEventSQL = `
SELECT t.txn_id FROM events e JOIN txn_ids t ON t.event_nid = e.event_nid
WHERE e.event_id = $1 AND t.user_id = $2 AND t.device_id = $3`

type txnIDsTable struct {
	insertTxnID        *sql.Stmt
	selectTxnEventID   *sql.Stmt
	selectTxnIDByEvent *sql.Stmt
}

func prepareTxnIDsTable(p *preparer) *txnIDsTable {
	return &txnIDsTable{
		insertTxnID:        p.prepare(insertTxnIDSQL),
		selectTxnEventID:   p.prepare(selectTxnEventIDSQL),
		selectTxnIDByEvent: p.prepare(selectTxnIDForEventSQL),
	}
}

func (t *txnIDsTable) InsertTxnID(ctx context.Context, tx *sql.Tx, key persistence.TxnKey, eventID string, eventNID persistence.EventNID) error {
	_, err := txStmt(ctx, tx, t.insertTxnID).ExecContext(ctx, key.UserID, key.DeviceID, key.TxnID, eventID, eventNID)
	return err
}

// SelectTxnEventID returns sql.ErrNoRows for an unknown transaction.
func (t *txnIDsTable) SelectTxnEventID(ctx context.Context, key persistence.TxnKey) (string, error) {
	var id string
	err := t.selectTxnEventID.QueryRowContext(ctx, key.UserID, key.DeviceID, key.TxnID).Scan(&id)
	return id, err
}

// SelectTxnIDForEvent returns sql.ErrNoRows when the device did not send
// the event with a transaction ID.
func (t *txnIDsTable) SelectTxnIDForEvent(ctx context.Context, eventID, userID, deviceID string) (string, error) {
	var id string
	err := t.selectTxnIDByEvent.QueryRowContext(ctx, eventID, userID, deviceID).Scan(&id)
	return id, err
}
