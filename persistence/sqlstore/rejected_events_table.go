package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// rejected_events: remote events a room refused (bad auth, bad shape), by
// ID with the reason, so that a server offering one again is answered
// without checking it again. Written by the room's commit.

const insertRejectedEventSQL = `
INSERT INTO rejected_events (event_id, room_nid, reason) VALUES ($1, $2, $3)
ON CONFLICT (event_id) DO NOTHING`

const selectRejectedEventSQL = "SELECT reason FROM rejected_events WHERE event_id = $1"

type rejectedEventsTable struct {
	insertRejectedEvent *sql.Stmt
	selectRejectedEvent *sql.Stmt
}

func prepareRejectedEventsTable(p *preparer) *rejectedEventsTable {
	return &rejectedEventsTable{
		insertRejectedEvent: p.prepare(insertRejectedEventSQL),
		selectRejectedEvent: p.prepare(selectRejectedEventSQL),
	}
}

func (t *rejectedEventsTable) InsertRejectedEvent(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, r persistence.Rejection) error {
	_, err := txStmt(ctx, tx, t.insertRejectedEvent).ExecContext(ctx, r.EventID, room, r.Reason)
	return err
}

// SelectRejectedEvent returns sql.ErrNoRows for an event not rejected.
func (t *rejectedEventsTable) SelectRejectedEvent(ctx context.Context, eventID string) (string, error) {
	var reason string
	err := t.selectRejectedEvent.QueryRowContext(ctx, eventID).Scan(&reason)
	return reason, err
}
