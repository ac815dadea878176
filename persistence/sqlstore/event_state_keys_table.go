package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// event_state_keys: state key → NID; "" is preassigned by each backend's
// first migration. A state key NID of 0 marks a non-state event.

const selectStateKeyNIDSQL = "SELECT state_key_nid FROM event_state_keys WHERE state_key = $1"

const insertStateKeySQL = `
INSERT INTO event_state_keys (state_key) VALUES ($1)
ON CONFLICT (state_key) DO NOTHING
RETURNING state_key_nid`

type eventStateKeysTable struct {
	selectStateKeyNID *sql.Stmt
	insertStateKey    *sql.Stmt
}

func prepareEventStateKeysTable(p *preparer) *eventStateKeysTable {
	return &eventStateKeysTable{
		selectStateKeyNID: p.prepare(selectStateKeyNIDSQL),
		insertStateKey:    p.prepare(insertStateKeySQL),
	}
}

// InsertOrSelectStateKeyNID returns the state key's NID, assigning one if it
// has none yet.
func (t *eventStateKeysTable) InsertOrSelectStateKeyNID(ctx context.Context, tx *sql.Tx, stateKey string) (persistence.StateKeyNID, error) {
	nid, err := insertOrSelectNID(ctx, txStmt(ctx, tx, t.selectStateKeyNID), txStmt(ctx, tx, t.insertStateKey), stateKey)
	if err != nil {
		return 0, fmt.Errorf("state key %q: %w", stateKey, err)
	}
	return persistence.StateKeyNID(nid), nil
}
