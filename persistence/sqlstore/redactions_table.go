package sqlstore

import (
	"context"
	"database/sql"
)

// redactions: which redaction a room applied to which of its events. The
// first applied redaction of an event is kept; event_json is never
// rewritten (readers for clients redact, see eventLookups).

const insertRedactionSQL = `
INSERT INTO redactions (redacts_nid, redaction_nid)
SELECT event_nid, $2 FROM events WHERE event_id = $1
ON CONFLICT (redacts_nid) DO NOTHING`

type redactionsTable struct {
	insert *sql.Stmt
}

func prepareRedactionsTable(p *preparer) *redactionsTable {
	return &redactionsTable{insert: p.prepare(insertRedactionSQL)}
}

// InsertRedaction records that the event redactionNID redacts the event
// with ID redacts, if that event is stored.
func (t *redactionsTable) InsertRedaction(ctx context.Context, tx *sql.Tx, redacts string, redactionNID int64) error {
	_, err := txStmt(ctx, tx, t.insert).ExecContext(ctx, redacts, redactionNID)
	return err
}
