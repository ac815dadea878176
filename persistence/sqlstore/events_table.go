package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// events: every stored event, its numeric IDs, its stream position, the
// state snapshot before it and its exact JSON.

// eventColumns and eventLookups read a persistence.StoredEvent (scanEvent)
// from "events e". The lookups are outer joins so that a dangling NID is
// reported as bad data rather than silently dropping the event.
const eventColumns = `e.event_nid, e.room_nid, r.room_id, r.room_version, e.event_id,
	t.event_type, e.state_key_nid, k.state_key, e.sender, e.depth, e.origin_server_ts,
	e.stream_pos, e.state_before_nid, e.event_json, re.event_id, re.event_json`

const eventLookups = `
LEFT JOIN rooms r ON r.room_nid = e.room_nid
LEFT JOIN event_types t ON t.event_type_nid = e.event_type_nid
LEFT JOIN event_state_keys k ON k.state_key_nid = e.state_key_nid
LEFT JOIN redactions rd ON rd.redacts_nid = e.event_nid
LEFT JOIN events re ON re.event_nid = rd.redaction_nid`

const insertEventSQL = `
INSERT INTO events (room_nid, event_id, event_type_nid, state_key_nid, depth, stream_pos,
	origin_server_ts, sender, state_before_nid, event_json)
VALUES ($1, $2, $3, $4, $5, {next_stream_pos}, $6, $7, $8, $9)
RETURNING event_nid, stream_pos`

// insertOutlierSQL stores an event outside the timeline: below zero, where
// no stream read looks, with no state before it.
const insertOutlierSQL = `
INSERT INTO events (room_nid, event_id, event_type_nid, state_key_nid, depth, stream_pos,
	origin_server_ts, sender, state_before_nid, event_json)
VALUES ($1, $2, $3, $4, $5, {next_outlier_pos}, $6, $7, 0, $8)
RETURNING event_nid, stream_pos`

// promoteOutlierSQL brings an outlier into the timeline.
const promoteOutlierSQL = `
UPDATE events SET stream_pos = {next_stream_pos}, state_before_nid = $2
WHERE event_id = $1 AND stream_pos < 0
RETURNING event_nid, stream_pos`

const selectEventPlaceSQL = "SELECT event_nid, stream_pos, room_nid FROM events WHERE event_id = $1"

// selectMaxStreamPosSQL is the highest stored position of the one stream
// that events, account data, receipts, to-device messages and device list
// changes share.
const selectMaxStreamPosSQL = `
SELECT MAX(p) FROM (
	SELECT COALESCE(MAX(stream_pos), 0) AS p FROM events
	UNION ALL SELECT COALESCE(MAX(stream_pos), 0) FROM account_data
	UNION ALL SELECT COALESCE(MAX(stream_pos), 0) FROM receipts
	UNION ALL SELECT COALESCE(MAX(stream_pos), 0) FROM to_device
	UNION ALL SELECT COALESCE(MAX(stream_pos), 0) FROM device_list_changes
) AS streams`

const selectEventByIDSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE e.event_id = $1`

const bulkSelectEventsByNIDSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE IN_NIDS(e.event_nid, $1)`

const selectRoomEventsAscSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE e.room_nid = $1 AND e.stream_pos > $2 AND e.stream_pos <= $3
ORDER BY e.stream_pos ASC LIMIT $4`

const selectRoomEventsDescSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE e.room_nid = $1 AND e.stream_pos > $2 AND e.stream_pos <= $3
ORDER BY e.stream_pos DESC LIMIT $4`

// selectEventsInRoomsSQL reads several rooms' events newest first (the
// user's notifications): the global stream position order, walked down.
const selectEventsInRoomsSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE IN_NIDS(e.room_nid, $1) AND e.stream_pos > $2 AND e.stream_pos <= $3
ORDER BY e.stream_pos DESC LIMIT $4`

const selectStateEventsBetweenSQL = "SELECT " + eventColumns + " FROM events e" + eventLookups + `
WHERE e.room_nid = $1 AND e.state_key_nid <> 0 AND e.stream_pos > $2 AND e.stream_pos <= $3
ORDER BY e.stream_pos ASC`

const selectRoomsWithEventsSQL = `
SELECT r.room_nid FROM rooms r
WHERE IN_NIDS(r.room_nid, $1) AND EXISTS (
	SELECT 1 FROM events e WHERE e.room_nid = r.room_nid AND e.stream_pos > $2 AND e.stream_pos <= $3
)
ORDER BY r.room_nid`

type eventsTable struct {
	d                        *Dialect
	insertEvent              *sql.Stmt
	insertOutlier            *sql.Stmt
	promoteOutlier           *sql.Stmt
	selectEventPlace         *sql.Stmt
	selectMaxStreamPos       *sql.Stmt
	selectEventByID          *sql.Stmt
	bulkSelectEventsByNID    *sql.Stmt
	selectRoomEventsAsc      *sql.Stmt
	selectRoomEventsDesc     *sql.Stmt
	selectStateEventsBetween *sql.Stmt
	selectRoomsWithEvents    *sql.Stmt
	selectEventsInRooms      *sql.Stmt
}

func prepareEventsTable(p *preparer) *eventsTable {
	return &eventsTable{
		d:                        p.d,
		insertEvent:              p.prepare(insertEventSQL),
		insertOutlier:            p.prepare(insertOutlierSQL),
		promoteOutlier:           p.prepare(promoteOutlierSQL),
		selectEventPlace:         p.prepare(selectEventPlaceSQL),
		selectMaxStreamPos:       p.prepare(selectMaxStreamPosSQL),
		selectEventByID:          p.prepare(selectEventByIDSQL),
		bulkSelectEventsByNID:    p.prepare(bulkSelectEventsByNIDSQL),
		selectRoomEventsAsc:      p.prepare(selectRoomEventsAscSQL),
		selectRoomEventsDesc:     p.prepare(selectRoomEventsDescSQL),
		selectStateEventsBetween: p.prepare(selectStateEventsBetweenSQL),
		selectRoomsWithEvents:    p.prepare(selectRoomsWithEventsSQL),
		selectEventsInRooms:      p.prepare(selectEventsInRoomsSQL),
	}
}

// insertedEvent is what the database assigned to a new event.
type insertedEvent struct {
	NID       persistence.EventNID
	StreamPos persistence.StreamPos
}

// InsertEvent stores one event, allocating its NID and stream position.
func (t *eventsTable) InsertEvent(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, ev *persistence.NewEvent,
	typeNID persistence.EventTypeNID, keyNID persistence.StateKeyNID, stateBefore persistence.StateSnapshotNID,
) (insertedEvent, error) {
	var ins insertedEvent
	err := txStmt(ctx, tx, t.insertEvent).QueryRowContext(ctx,
		room, ev.EventID, typeNID, keyNID, ev.Depth, ev.OriginServerTS, ev.Sender, stateBefore, string(ev.JSON),
	).Scan(&ins.NID, &ins.StreamPos)
	if err != nil {
		return ins, err
	}
	if ins.NID <= 0 || ins.StreamPos <= 0 {
		return ins, fmt.Errorf("events: bad NID %d or stream position %d assigned", ins.NID, ins.StreamPos)
	}
	return ins, nil
}

// InsertOutlier stores an outlier (persistence.NewEvent.Outlier),
// allocating its NID and negative position.
func (t *eventsTable) InsertOutlier(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, ev *persistence.NewEvent,
	typeNID persistence.EventTypeNID, keyNID persistence.StateKeyNID,
) (insertedEvent, error) {
	var ins insertedEvent
	err := txStmt(ctx, tx, t.insertOutlier).QueryRowContext(ctx,
		room, ev.EventID, typeNID, keyNID, ev.Depth, ev.OriginServerTS, ev.Sender, string(ev.JSON),
	).Scan(&ins.NID, &ins.StreamPos)
	if err != nil {
		return ins, err
	}
	if ins.NID <= 0 || ins.StreamPos >= 0 {
		return ins, fmt.Errorf("events: bad NID %d or outlier position %d assigned", ins.NID, ins.StreamPos)
	}
	return ins, nil
}

// PromoteOutlier gives a stored outlier its stream position and state
// before; sql.ErrNoRows when the event is not stored as an outlier.
func (t *eventsTable) PromoteOutlier(ctx context.Context, tx *sql.Tx, eventID string, stateBefore persistence.StateSnapshotNID) (insertedEvent, error) {
	var ins insertedEvent
	err := txStmt(ctx, tx, t.promoteOutlier).QueryRowContext(ctx, eventID, stateBefore).Scan(&ins.NID, &ins.StreamPos)
	return ins, err
}

// SelectEventPlace returns where a stored event is: its NID, position and
// room; sql.ErrNoRows for an unknown event.
func (t *eventsTable) SelectEventPlace(ctx context.Context, tx *sql.Tx, eventID string) (insertedEvent, persistence.RoomNID, error) {
	var ins insertedEvent
	var room persistence.RoomNID
	err := txStmt(ctx, tx, t.selectEventPlace).QueryRowContext(ctx, eventID).Scan(&ins.NID, &ins.StreamPos, &room)
	return ins, room, err
}

// SelectMaxStreamPos is the highest committed stream position.
func (t *eventsTable) SelectMaxStreamPos(ctx context.Context) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := t.selectMaxStreamPos.QueryRowContext(ctx).Scan(&pos)
	return pos, err
}

// SelectEventByID returns sql.ErrNoRows for an unknown event.
func (t *eventsTable) SelectEventByID(ctx context.Context, eventID string) (*persistence.StoredEvent, error) {
	ev, err := scanEvent(t.selectEventByID.QueryRowContext(ctx, eventID))
	if err != nil {
		return nil, err
	}
	return &ev, nil
}

// BulkSelectEventsByNID returns the events in no particular order; it is an
// error if one of them is missing.
func (t *eventsTable) BulkSelectEventsByNID(ctx context.Context, nids []int64) ([]persistence.StoredEvent, error) {
	if len(nids) == 0 {
		return nil, nil
	}
	evs, err := queryEvents(ctx, t.bulkSelectEventsByNID, t.d.formatNIDs(nids))
	if err != nil {
		return nil, err
	}
	if len(evs) != len(nids) {
		return nil, fmt.Errorf("events: %d of %d events are missing", len(nids)-len(evs), len(nids))
	}
	return evs, nil
}

func (t *eventsTable) SelectRoomEvents(ctx context.Context, room persistence.RoomNID, from, to persistence.StreamPos, limit int, forward bool) ([]persistence.StoredEvent, error) {
	st := t.selectRoomEventsDesc
	if forward {
		st = t.selectRoomEventsAsc
	}
	return queryEvents(ctx, st, room, from, to, limit)
}

func (t *eventsTable) SelectStateEventsBetween(ctx context.Context, room persistence.RoomNID, from, to persistence.StreamPos) ([]persistence.StoredEvent, error) {
	return queryEvents(ctx, t.selectStateEventsBetween, room, from, to)
}

func (t *eventsTable) SelectEventsInRooms(ctx context.Context, rooms []persistence.RoomNID, from, to persistence.StreamPos, limit int) ([]persistence.StoredEvent, error) {
	return queryEvents(ctx, t.selectEventsInRooms, t.d.formatRoomNIDs(rooms), from, to, limit)
}

func (t *eventsTable) SelectRoomsWithEvents(ctx context.Context, rooms []persistence.RoomNID, from, to persistence.StreamPos) ([]persistence.RoomNID, error) {
	rows, err := t.selectRoomsWithEvents.QueryContext(ctx, t.d.formatRoomNIDs(rooms), from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.RoomNID
	for rows.Next() {
		var r persistence.RoomNID
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

type rowScanner interface {
	Scan(dest ...any) error
}

// scanEvent reads the eventColumns of one row.
func scanEvent(row rowScanner) (persistence.StoredEvent, error) {
	var ev persistence.StoredEvent
	var roomID, roomVersion, evType, stateKey, redactedBy sql.NullString
	var keyNID int64
	err := row.Scan(&ev.NID, &ev.RoomNID, &roomID, &roomVersion, &ev.EventID, &evType, &keyNID, &stateKey,
		&ev.Sender, &ev.Depth, &ev.OriginServerTS, &ev.StreamPos, &ev.StateBefore, &ev.JSON, &redactedBy, &ev.Redaction)
	if err != nil {
		return ev, err
	}
	switch {
	case !roomID.Valid || !roomVersion.Valid:
		return ev, fmt.Errorf("event %s: its room %d is not stored", ev.EventID, ev.RoomNID)
	case !evType.Valid:
		return ev, fmt.Errorf("event %s: its event type NID is not stored", ev.EventID)
	case keyNID != 0 && !stateKey.Valid:
		return ev, fmt.Errorf("event %s: its state key NID %d is not stored", ev.EventID, keyNID)
	}
	ev.RoomID, ev.RoomVersion, ev.Type = roomID.String, roomVersion.String, evType.String
	ev.RedactedBy = redactedBy.String
	if keyNID != 0 {
		key := stateKey.String
		ev.StateKey = &key
	}
	return ev, nil
}

// queryEvents runs a statement selecting eventColumns.
func queryEvents(ctx context.Context, st *sql.Stmt, args ...any) ([]persistence.StoredEvent, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var evs []persistence.StoredEvent
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}
