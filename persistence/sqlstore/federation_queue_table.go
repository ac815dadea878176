package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// federation_queue: the outbound federation queue, one row per
// (destination, PDU or EDU) still to be sent, in seq order. A PDU row
// points at its event (event_nid); an EDU row has event_nid 0 and carries
// its type and content.

// insertQueuedSQL queues one row; insertRows builds the statement
// for several destinations at once ($1..$3 as here, the destinations from
// $4 on), so that an event for a room's hundred servers is one statement.
const insertQueuedSQL = `
INSERT INTO federation_queue (destination, event_nid, edu_type, edu_content) VALUES ($4, $1, $2, $3)`

// maxQueuedRowsPerStatement bounds the destinations of one INSERT (and so
// its parameters, well below SQLite's and PostgreSQL's limits).
const maxQueuedRowsPerStatement = 500

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
	d                                                                 *Dialect
	insertOne, selectPDUs, selectEDUs, deleteSeqs, selectDestinations *sql.Stmt
}

func prepareFederationQueueTable(p *preparer) *federationQueueTable {
	return &federationQueueTable{
		d:                  p.d,
		insertOne:          p.prepare(insertQueuedSQL),
		selectPDUs:         p.prepare(selectQueuedPDUsSQL),
		selectEDUs:         p.prepare(selectQueuedEDUsSQL),
		deleteSeqs:         p.prepare(deleteQueuedSQL),
		selectDestinations: p.prepare(selectQueuedDestinationsSQL),
	}
}

// InsertQueuedPDUs queues the event for each destination, once each.
func (t *federationQueueTable) InsertQueuedPDUs(ctx context.Context, tx *sql.Tx, destinations []string, event persistence.EventNID) error {
	return t.insertRows(ctx, tx, destinations, int64(event), "", "")
}

// InsertQueuedEDUs queues the EDU for each destination, once each.
func (t *federationQueueTable) InsertQueuedEDUs(ctx context.Context, tx *sql.Tx, destinations []string, eduType string, content []byte) error {
	return t.insertRows(ctx, tx, destinations, 0, eduType, string(content))
}

// insertRows writes one row per distinct destination, in the order given
// (seqs follow it).
func (t *federationQueueTable) insertRows(ctx context.Context, tx *sql.Tx, destinations []string, event int64, eduType, content string) error {
	ds := make([]string, 0, len(destinations))
	seen := make(map[string]bool, len(destinations))
	for _, d := range destinations {
		if !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	if len(ds) == 1 {
		_, err := txStmt(ctx, tx, t.insertOne).ExecContext(ctx, event, eduType, content, ds[0])
		return err
	}
	for chunk := range slices.Chunk(ds, maxQueuedRowsPerStatement) {
		var q strings.Builder
		q.WriteString("INSERT INTO federation_queue (destination, event_nid, edu_type, edu_content) VALUES ")
		args := []any{event, eduType, content}
		for i, d := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "($%d, $1, $2, $3)", i+4)
			args = append(args, d)
		}
		query, err := t.d.rewrite(q.String())
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return err
		}
	}
	return nil
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
