package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// federation_queue: the outbound federation queue, one row per
// (destination, PDU or EDU) still to be sent, in seq order. A PDU row
// points at its event (event_nid); an EDU row has event_nid 0 and carries
// its type and content.

const insertQueuedPDUSQL = `
INSERT INTO federation_queue (destination, event_nid, edu_type, edu_content) VALUES ($1, $2, '', '')`

const insertQueuedEDUSQL = `
INSERT INTO federation_queue (destination, event_nid, edu_type, edu_content) VALUES ($1, 0, $2, $3)`

// selectQueuedPDUsSQL joins the events table: the JSON sent is the event
// exactly as stored.
const selectQueuedPDUsSQL = `
SELECT q.seq, e.event_id, e.event_json FROM federation_queue q
JOIN events e ON e.event_nid = q.event_nid
WHERE q.destination = $1 AND q.event_nid <> 0
ORDER BY q.seq LIMIT $2`

const selectQueuedEDUsSQL = `
SELECT seq, edu_type, edu_content FROM federation_queue
WHERE destination = $1 AND event_nid = 0
ORDER BY seq LIMIT $2`

const deleteQueuedSQL = "DELETE FROM federation_queue WHERE destination = $1 AND IN_NIDS(seq, $2)"

const selectQueuedDestinationsSQL = "SELECT DISTINCT destination FROM federation_queue ORDER BY destination"

type federationQueueTable struct {
	insertPDU, insertEDU, selectPDUs, selectEDUs, deleteSeqs, selectDestinations *sql.Stmt
}

func prepareFederationQueueTable(p *preparer) *federationQueueTable {
	return &federationQueueTable{
		insertPDU:          p.prepare(insertQueuedPDUSQL),
		insertEDU:          p.prepare(insertQueuedEDUSQL),
		selectPDUs:         p.prepare(selectQueuedPDUsSQL),
		selectEDUs:         p.prepare(selectQueuedEDUsSQL),
		deleteSeqs:         p.prepare(deleteQueuedSQL),
		selectDestinations: p.prepare(selectQueuedDestinationsSQL),
	}
}

// InsertQueuedPDUs queues the event for each destination, once each.
func (t *federationQueueTable) InsertQueuedPDUs(ctx context.Context, tx *sql.Tx, destinations []string, event persistence.EventNID) error {
	if len(destinations) == 0 {
		return nil
	}
	st := txStmt(ctx, tx, t.insertPDU)
	for i, d := range destinations {
		if seenBefore(destinations, i) {
			continue
		}
		if _, err := st.ExecContext(ctx, d, event); err != nil {
			return err
		}
	}
	return nil
}

// InsertQueuedEDUs queues the EDU for each destination, once each.
func (t *federationQueueTable) InsertQueuedEDUs(ctx context.Context, tx *sql.Tx, destinations []string, eduType string, content []byte) error {
	st := txStmt(ctx, tx, t.insertEDU)
	for i, d := range destinations {
		if seenBefore(destinations, i) {
			continue
		}
		if _, err := st.ExecContext(ctx, d, eduType, string(content)); err != nil {
			return err
		}
	}
	return nil
}

// seenBefore reports whether list[i] is also at an earlier index: lists of
// destinations are short enough for the quadratic scan (a room's servers
// are deduplicated by the room; this only guards against a repeat).
func seenBefore(list []string, i int) bool {
	for j := range i {
		if list[j] == list[i] {
			return true
		}
	}
	return false
}

func (t *federationQueueTable) SelectQueuedPDUs(ctx context.Context, destination string, limit int) ([]persistence.QueuedPDU, error) {
	if limit < 1 {
		return nil, nil
	}
	rows, err := t.selectPDUs.QueryContext(ctx, destination, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.QueuedPDU
	for rows.Next() {
		var p persistence.QueuedPDU
		var js string
		if err := rows.Scan(&p.Seq, &p.EventID, &js); err != nil {
			return nil, err
		}
		p.JSON = []byte(js)
		out = append(out, p)
	}
	return out, rows.Err()
}

func (t *federationQueueTable) SelectQueuedEDUs(ctx context.Context, destination string, limit int) ([]persistence.QueuedEDU, error) {
	if limit < 1 {
		return nil, nil
	}
	rows, err := t.selectEDUs.QueryContext(ctx, destination, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.QueuedEDU
	for rows.Next() {
		var e persistence.QueuedEDU
		var content string
		if err := rows.Scan(&e.Seq, &e.Type, &content); err != nil {
			return nil, err
		}
		e.Content = []byte(content)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (t *federationQueueTable) SelectQueuedDestinations(ctx context.Context) ([]string, error) {
	rows, err := t.selectDestinations.QueryContext(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
