package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// event_types: event type → NID. The well-known types are preassigned by
// each backend's first migration.

const selectEventTypeNIDSQL = "SELECT event_type_nid FROM event_types WHERE event_type = $1"

const insertEventTypeSQL = `
INSERT INTO event_types (event_type) VALUES ($1)
ON CONFLICT (event_type) DO NOTHING
RETURNING event_type_nid`

const selectEventTypesSQL = "SELECT event_type, event_type_nid FROM event_types ORDER BY event_type_nid LIMIT $1"

type eventTypesTable struct {
	selectEventTypeNID *sql.Stmt
	insertEventType    *sql.Stmt
	selectEventTypes   *sql.Stmt
}

func prepareEventTypesTable(p *preparer) *eventTypesTable {
	return &eventTypesTable{
		selectEventTypeNID: p.prepare(selectEventTypeNIDSQL),
		insertEventType:    p.prepare(insertEventTypeSQL),
		selectEventTypes:   p.prepare(selectEventTypesSQL),
	}
}

// InsertOrSelectEventTypeNID returns the type's NID, assigning one if it has
// none yet.
func (t *eventTypesTable) InsertOrSelectEventTypeNID(ctx context.Context, tx *sql.Tx, eventType string) (persistence.EventTypeNID, error) {
	nid, err := insertOrSelectNID(ctx, txStmt(ctx, tx, t.selectEventTypeNID), txStmt(ctx, tx, t.insertEventType), eventType)
	if err != nil {
		return 0, fmt.Errorf("event type %q: %w", eventType, err)
	}
	return persistence.EventTypeNID(nid), nil
}

// SelectEventTypes returns up to limit known types, oldest first.
func (t *eventTypesTable) SelectEventTypes(ctx context.Context, limit int) (map[string]int64, error) {
	rows, err := t.selectEventTypes.QueryContext(ctx, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var s string
		var nid int64
		if err := rows.Scan(&s, &nid); err != nil {
			return nil, err
		}
		if nid <= 0 {
			return nil, fmt.Errorf("event type %q has NID %d", s, nid)
		}
		m[s] = nid
	}
	return m, rows.Err()
}

// insertOrSelectNID finds the NID of s, or inserts s to assign one. When a
// concurrent transaction inserts s first, the insert does nothing (after
// waiting for that transaction) and the second select finds its row.
func insertOrSelectNID(ctx context.Context, sel, ins *sql.Stmt, s string) (int64, error) {
	var nid int64
	err := sel.QueryRowContext(ctx, s).Scan(&nid)
	if err == sql.ErrNoRows {
		err = ins.QueryRowContext(ctx, s).Scan(&nid)
		if err == sql.ErrNoRows {
			err = sel.QueryRowContext(ctx, s).Scan(&nid)
		}
	}
	if err != nil {
		return 0, err
	}
	if nid <= 0 {
		return 0, fmt.Errorf("bad NID %d", nid)
	}
	return nid, nil
}
