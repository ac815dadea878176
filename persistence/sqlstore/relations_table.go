package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// relations: the events that relate to another through
// content["m.relates_to"] {rel_type, event_id}, one row per child event,
// written when the child is committed. The parent is kept by ID: it may
// arrive later, or never.

const insertRelationSQL = `
INSERT INTO relations (child_nid, room_nid, parent_id, rel_type, child_type, stream_pos)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (child_nid) DO NOTHING`

// Redacted children are left out: redaction strips m.relates_to.
const selectRelationsAscSQL = "SELECT " + eventColumns + `
FROM relations rel JOIN events e ON e.event_nid = rel.child_nid` + eventLookups + `
WHERE rel.parent_id = $1 AND rel.room_nid = $2 AND ($3 = '' OR rel.rel_type = $3)
	AND ($4 = '' OR rel.child_type = $4) AND rel.stream_pos > $5 AND rel.stream_pos <= $6
	AND rd.redacts_nid IS NULL
ORDER BY rel.stream_pos ASC LIMIT $7`

const selectRelationsDescSQL = "SELECT " + eventColumns + `
FROM relations rel JOIN events e ON e.event_nid = rel.child_nid` + eventLookups + `
WHERE rel.parent_id = $1 AND rel.room_nid = $2 AND ($3 = '' OR rel.rel_type = $3)
	AND ($4 = '' OR rel.child_type = $4) AND rel.stream_pos > $5 AND rel.stream_pos <= $6
	AND rd.redacts_nid IS NULL
ORDER BY rel.stream_pos DESC LIMIT $7`

// selectThreadsSQL: $1 room, $2 before (exclusive, on the latest reply),
// $3 bound (inclusive, on every reply), $4 participant or ”, $5 limit.
const selectThreadsSQL = "SELECT " + eventColumns + `, th.latest, le.event_id, th.n
FROM (
	SELECT tr.parent_id AS parent_id, MAX(tr.stream_pos) AS latest, COUNT(*) AS n
	FROM relations tr LEFT JOIN redactions x ON x.redacts_nid = tr.child_nid
	WHERE tr.room_nid = $1 AND tr.rel_type = 'm.thread' AND tr.stream_pos <= $3 AND x.redacts_nid IS NULL
	GROUP BY tr.parent_id
	HAVING MAX(tr.stream_pos) < $2
) th
JOIN events e ON e.event_id = th.parent_id AND e.room_nid = $1
JOIN events le ON le.stream_pos = th.latest` + eventLookups + `
WHERE $4 = '' OR e.sender = $4 OR EXISTS (
	SELECT 1 FROM relations pr JOIN events pe ON pe.event_nid = pr.child_nid
	WHERE pr.parent_id = th.parent_id AND pr.room_nid = $1 AND pr.rel_type = 'm.thread'
		AND pr.stream_pos <= $3 AND pe.sender = $4
)
ORDER BY th.latest DESC LIMIT $5`

// selectBundledChildrenSQL: $1 parent NIDs, $2 bound, $3 limit.
const selectBundledChildrenSQL = "SELECT " + eventColumns + `, p.event_nid, rel.rel_type
FROM events p
JOIN relations rel ON rel.parent_id = p.event_id AND rel.room_nid = p.room_nid
JOIN events e ON e.event_nid = rel.child_nid` + eventLookups + `
WHERE IN_NIDS(p.event_nid, $1) AND rel.rel_type IN ('m.replace', 'm.reference')
	AND rel.stream_pos <= $2 AND rd.redacts_nid IS NULL
ORDER BY rel.stream_pos ASC LIMIT $3`

// selectThreadSummariesSQL: $1 parent NIDs, $2 bound, $3 participant.
const selectThreadSummariesSQL = "SELECT " + eventColumns + `, th.parent_nid, th.n, th.mine
FROM (
	SELECT p.event_nid AS parent_nid, MAX(rel.stream_pos) AS latest, COUNT(*) AS n,
		MAX(CASE WHEN c.sender = $3 THEN 1 ELSE 0 END) AS mine
	FROM events p
	JOIN relations rel ON rel.parent_id = p.event_id AND rel.room_nid = p.room_nid
	JOIN events c ON c.event_nid = rel.child_nid
	LEFT JOIN redactions x ON x.redacts_nid = rel.child_nid
	WHERE IN_NIDS(p.event_nid, $1) AND rel.rel_type = 'm.thread' AND rel.stream_pos <= $2
		AND x.redacts_nid IS NULL
	GROUP BY p.event_nid
) th
JOIN events e ON e.stream_pos = th.latest` + eventLookups

const selectEventsFromTimestampSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE e.room_nid = $1 AND e.origin_server_ts >= $2 AND e.stream_pos > 0 AND e.stream_pos <= $3
ORDER BY e.origin_server_ts ASC, e.stream_pos ASC LIMIT $4`

const selectEventsUntilTimestampSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE e.room_nid = $1 AND e.origin_server_ts <= $2 AND e.stream_pos > 0 AND e.stream_pos <= $3
ORDER BY e.origin_server_ts DESC, e.stream_pos DESC LIMIT $4`

type relationsTable struct {
	d               *Dialect
	selectChildren  *sql.Stmt
	selectSummaries *sql.Stmt
	insert          *sql.Stmt
	selectAsc       *sql.Stmt
	selectDesc      *sql.Stmt
	selectThreads   *sql.Stmt
	selectFromTS    *sql.Stmt
	selectUntilTS   *sql.Stmt
}

func prepareRelationsTable(p *preparer) *relationsTable {
	return &relationsTable{
		d:               p.d,
		selectChildren:  p.prepare(selectBundledChildrenSQL),
		selectSummaries: p.prepare(selectThreadSummariesSQL),
		insert:          p.prepare(insertRelationSQL),
		selectAsc:       p.prepare(selectRelationsAscSQL),
		selectDesc:      p.prepare(selectRelationsDescSQL),
		selectThreads:   p.prepare(selectThreadsSQL),
		selectFromTS:    p.prepare(selectEventsFromTimestampSQL),
		selectUntilTS:   p.prepare(selectEventsUntilTimestampSQL),
	}
}

// relationOf reads content["m.relates_to"] of an event's JSON: ok is false
// when the event relates to nothing (m.in_reply_to alone is no relation).
func relationOf(js []byte) (relType, parentID string, ok bool) {
	if !bytes.Contains(js, []byte("m.relates_to")) {
		return "", "", false
	}
	var ev struct {
		Content struct {
			RelatesTo json.RawMessage `json:"m.relates_to"`
		} `json:"content"`
	}
	if json.Unmarshal(js, &ev) != nil || len(ev.Content.RelatesTo) == 0 {
		return "", "", false
	}
	var rel struct {
		RelType any `json:"rel_type"`
		EventID any `json:"event_id"`
	}
	if json.Unmarshal(ev.Content.RelatesTo, &rel) != nil {
		return "", "", false
	}
	relType, ok1 := rel.RelType.(string)
	parentID, ok2 := rel.EventID.(string)
	if !ok1 || !ok2 || relType == "" || parentID == "" {
		return "", "", false
	}
	return relType, parentID, true
}

// InsertRelation records that the child event relates to parentID.
func (t *relationsTable) InsertRelation(ctx context.Context, tx *sql.Tx, child persistence.EventNID, room persistence.RoomNID,
	parentID, relType, childType string, pos persistence.StreamPos,
) error {
	_, err := txStmt(ctx, tx, t.insert).ExecContext(ctx, child, room, parentID, relType, childType, pos)
	return err
}

func (t *relationsTable) SelectRelations(ctx context.Context, room persistence.RoomNID, parentID, relType, eventType string,
	from, to persistence.StreamPos, limit int, forward bool,
) ([]persistence.StoredEvent, error) {
	st := t.selectDesc
	if forward {
		st = t.selectAsc
	}
	return queryEvents(ctx, st, parentID, room, relType, eventType, from, to, limit)
}

func (t *relationsTable) SelectThreads(ctx context.Context, room persistence.RoomNID, participant string, before, to persistence.StreamPos, limit int) ([]persistence.Thread, error) {
	rows, err := t.selectThreads.QueryContext(ctx, room, before, to, participant, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.Thread
	for rows.Next() {
		var th persistence.Thread
		ev, err := scanEvent(extraColumns{rows, []any{&th.Latest, &th.LatestEventID, &th.Count}})
		if err != nil {
			return nil, err
		}
		th.Root = ev
		out = append(out, th)
	}
	return out, rows.Err()
}

func (t *relationsTable) SelectBundledChildren(ctx context.Context, parents []int64, to persistence.StreamPos, limit int) ([]persistence.RelatedChild, error) {
	rows, err := t.selectChildren.QueryContext(ctx, t.d.formatNIDs(parents), to, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.RelatedChild
	for rows.Next() {
		var c persistence.RelatedChild
		if c.Event, err = scanEvent(extraColumns{rows, []any{&c.Parent, &c.RelType}}); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (t *relationsTable) SelectThreadSummaries(ctx context.Context, parents []int64, to persistence.StreamPos, participant string) ([]persistence.ThreadSummary, error) {
	rows, err := t.selectSummaries.QueryContext(ctx, t.d.formatNIDs(parents), to, participant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.ThreadSummary
	for rows.Next() {
		var th persistence.ThreadSummary
		var mine int
		if th.Latest, err = scanEvent(extraColumns{rows, []any{&th.Root, &th.Count, &mine}}); err != nil {
			return nil, err
		}
		th.Participated = mine != 0
		out = append(out, th)
	}
	return out, rows.Err()
}

func (t *relationsTable) SelectEventsNearTimestamp(ctx context.Context, room persistence.RoomNID, ts int64, forward bool, to persistence.StreamPos, limit int) ([]persistence.StoredEvent, error) {
	st := t.selectUntilTS
	if forward {
		st = t.selectFromTS
	}
	return queryEvents(ctx, st, room, ts, to, limit)
}

// extraColumns scans columns selected after eventColumns.
type extraColumns struct {
	row   rowScanner
	extra []any
}

func (x extraColumns) Scan(dest ...any) error {
	return x.row.Scan(append(dest, x.extra...)...)
}
