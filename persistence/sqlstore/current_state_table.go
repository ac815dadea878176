package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// current_state: a projection of each room's current state, (room, type,
// state key) → event, written by the commit that changes it. Reads of the
// current state need no snapshot resolution.

const upsertCurrentStateSQL = `
INSERT INTO current_state (room_nid, event_type_nid, state_key_nid, event_nid)
VALUES ($1, $2, $3, $4)
ON CONFLICT (room_nid, event_type_nid, state_key_nid) DO UPDATE SET event_nid = excluded.event_nid`

const deleteCurrentStateSQL = `
DELETE FROM current_state WHERE room_nid = $1 AND event_type_nid = $2 AND state_key_nid = $3`

// The events are outer-joined so that a dangling event NID fails the scan.
const selectCurrentStateSQL = "SELECT " + eventColumns + `
FROM current_state cs LEFT JOIN events e ON e.event_nid = cs.event_nid` + eventLookups + `
WHERE cs.room_nid = $1`

const selectCurrentStateEventSQL = "SELECT " + eventColumns + `
FROM current_state cs
JOIN event_types ct ON ct.event_type_nid = cs.event_type_nid
JOIN event_state_keys ck ON ck.state_key_nid = cs.state_key_nid
LEFT JOIN events e ON e.event_nid = cs.event_nid` + eventLookups + `
WHERE cs.room_nid = $1 AND ct.event_type = $2 AND ck.state_key = $3`

type currentStateTable struct {
	upsertCurrentState      *sql.Stmt
	deleteCurrentState      *sql.Stmt
	selectCurrentState      *sql.Stmt
	selectCurrentStateEvent *sql.Stmt
}

func prepareCurrentStateTable(p *preparer) *currentStateTable {
	return &currentStateTable{
		upsertCurrentState:      p.prepare(upsertCurrentStateSQL),
		deleteCurrentState:      p.prepare(deleteCurrentStateSQL),
		selectCurrentState:      p.prepare(selectCurrentStateSQL),
		selectCurrentStateEvent: p.prepare(selectCurrentStateEventSQL),
	}
}

func (t *currentStateTable) UpsertCurrentState(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, e stateEntry) error {
	_, err := txStmt(ctx, tx, t.upsertCurrentState).ExecContext(ctx, room, e.Type, e.Key, e.Event)
	return err
}

// DeleteCurrentState drops a tuple a state reset left out.
func (t *currentStateTable) DeleteCurrentState(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, tuple stateKeyTuple) error {
	_, err := txStmt(ctx, tx, t.deleteCurrentState).ExecContext(ctx, room, tuple.Type, tuple.Key)
	return err
}

func (t *currentStateTable) SelectCurrentState(ctx context.Context, room persistence.RoomNID) ([]persistence.StoredEvent, error) {
	return queryEvents(ctx, t.selectCurrentState, room)
}

// SelectCurrentStateEvent returns sql.ErrNoRows when there is no such state.
func (t *currentStateTable) SelectCurrentStateEvent(ctx context.Context, room persistence.RoomNID, eventType, stateKey string) (*persistence.StoredEvent, error) {
	ev, err := scanEvent(t.selectCurrentStateEvent.QueryRowContext(ctx, room, eventType, stateKey))
	if err != nil {
		return nil, err
	}
	return &ev, nil
}
