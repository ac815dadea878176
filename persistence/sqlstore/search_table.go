package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// event_search: the text of the events the search API matches (the body of
// m.room.message, the name of m.room.name, the topic of m.room.topic), one
// row per event, written when the event is committed and deleted when it
// is redacted. How the text is indexed depends on the dialect's FullText:
//
//   - PostgreSQL keeps a tsvector (English configuration) under a GIN
//     index and matches websearch_to_tsquery of the term as typed;
//   - SQLite keeps the lowercased text, and modernc.org/sqlite, which has
//     FTS5 (but not FTS3/4), indexes it in the external-content FTS5 table
//     event_search_fts that the backend creates at open time;
//   - github.com/mattn/go-sqlite3, which without build tags has FTS3/4
//     but not FTS5, scans the rooms' rows for every word instead. The two
//     drivers have no full text module in common, and a database file
//     must open with either, so the schema has no virtual table.

// Search key IDs, as stored in key_id.
const (
	searchKeyBody  = 1
	searchKeyName  = 2
	searchKeyTopic = 3
)

var searchKeyIDs = map[string]int64{
	persistence.SearchKeyBody:  searchKeyBody,
	persistence.SearchKeyName:  searchKeyName,
	persistence.SearchKeyTopic: searchKeyTopic,
}

const insertSearchVectorSQL = `
INSERT INTO event_search (event_nid, room_nid, key_id, stream_pos, vector)
VALUES ($1, $2, $3, $4, to_tsvector('english', $5))`

const insertSearchTextSQL = `
INSERT INTO event_search (event_nid, room_nid, key_id, stream_pos, body)
VALUES ($1, $2, $3, $4, $5)`

const insertSearchFTS5SQL = `INSERT INTO event_search_fts (rowid, body) VALUES ($1, $2)`

const deleteSearchSQL = `
DELETE FROM event_search WHERE event_nid = (SELECT event_nid FROM events WHERE event_id = $1)`

// An external-content FTS5 table forgets a row given its old text.
const deleteSearchFTS5SQL = `
INSERT INTO event_search_fts (event_search_fts, rowid, body)
SELECT 'delete', s.event_nid, s.body FROM event_search s JOIN events e ON e.event_nid = s.event_nid
WHERE e.event_id = $1`

// searchMatch is, per FullText, the FROM and WHERE that find the rows
// matching $1, and the rank of a row (higher is closer).
func searchMatch(ft FullText) (from, rank string) {
	switch ft {
	case FullTextTSVector:
		return "FROM event_search s, websearch_to_tsquery('english', $1) q WHERE s.vector @@ q", "ts_rank(s.vector, q)"
	case FullTextFTS5:
		return "FROM event_search_fts f JOIN event_search s ON s.event_nid = f.rowid WHERE event_search_fts MATCH $1",
			"-bm25(event_search_fts)"
	default:
		// $1 is a JSON array of lowercased words, all of which must occur.
		return "FROM event_search s WHERE NOT EXISTS (SELECT 1 FROM json_each($1) w WHERE instr(s.body, w.value) = 0)",
			"(SELECT SUM((length(s.body) - length(replace(s.body, w.value, ''))) * 1.0 / length(w.value)) FROM json_each($1) w)"
	}
}

// $2 rooms, $3 key IDs, $4 the upper bound.
const searchScope = " AND IN_NIDS(s.room_nid, $2) AND IN_NIDS(s.key_id, $3) AND s.stream_pos <= $4"

type searchTable struct {
	fullText   FullText
	insert     *sql.Stmt
	insertFTS5 *sql.Stmt // FullTextFTS5 only
	delete     *sql.Stmt
	deleteFTS5 *sql.Stmt // FullTextFTS5 only
	// $5 is the position to go on before (0: none), $6 the limit.
	selectRecent *sql.Stmt
	// $5 is the offset, $6 the limit.
	selectRanked *sql.Stmt
	count        *sql.Stmt
}

func prepareSearchTable(p *preparer) *searchTable {
	ft := p.d.FullText
	from, rank := searchMatch(ft)
	t := &searchTable{
		fullText: ft,
		delete:   p.prepare(deleteSearchSQL),
		selectRecent: p.prepare("SELECT s.event_nid, " + rank + " " + from + searchScope +
			" AND ($5 = 0 OR s.stream_pos < $5) ORDER BY s.stream_pos DESC LIMIT $6"),
		selectRanked: p.prepare("SELECT s.event_nid, " + rank + " AS hit_rank " + from + searchScope +
			" ORDER BY hit_rank DESC, s.stream_pos DESC LIMIT $6 OFFSET $5"),
		count: p.prepare("SELECT COUNT(*) " + from + searchScope),
	}
	if ft == FullTextTSVector {
		t.insert = p.prepare(insertSearchVectorSQL)
	} else {
		t.insert = p.prepare(insertSearchTextSQL)
	}
	if ft == FullTextFTS5 {
		t.insertFTS5 = p.prepare(insertSearchFTS5SQL)
		t.deleteFTS5 = p.prepare(deleteSearchFTS5SQL)
	}
	return t
}

// searchTextOf is the text an event adds to the index, and under which
// key: ok is false for events that add none.
func searchTextOf(typ string, stateKey *string, js []byte) (keyID int64, text string, ok bool) {
	var field string
	switch {
	case typ == "m.room.message" && stateKey == nil:
		keyID, field = searchKeyBody, "body"
	case typ == "m.room.name" && stateKey != nil && *stateKey == "":
		keyID, field = searchKeyName, "name"
	case typ == "m.room.topic" && stateKey != nil && *stateKey == "":
		keyID, field = searchKeyTopic, "topic"
	default:
		return 0, "", false
	}
	var ev struct {
		Content map[string]json.RawMessage `json:"content"`
	}
	if json.Unmarshal(js, &ev) != nil {
		return 0, "", false
	}
	raw := ev.Content[field]
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &text) != nil || text == "" {
		return 0, "", false
	}
	if keyID == searchKeyTopic {
		text = withPlainTopics(text, ev.Content["m.topic"])
	}
	// PostgreSQL text cannot hold NUL.
	text = strings.ReplaceAll(text, "\x00", "\x01")
	return keyID, text, true
}

// withPlainTopics adds to a topic the text/plain representations of its
// m.topic (the spec searches both) that say something else. Migration 11
// indexed the topics stored before it without them.
func withPlainTopics(topic string, mTopic json.RawMessage) string {
	var rich struct {
		Text []struct {
			MimeType *string `json:"mimetype"`
			Body     any     `json:"body"`
		} `json:"m.text"`
	}
	if len(mTopic) == 0 || json.Unmarshal(mTopic, &rich) != nil {
		return topic
	}
	for _, t := range rich.Text {
		body, ok := t.Body.(string)
		if ok && body != topic && (t.MimeType == nil || *t.MimeType == "text/plain") {
			topic += "\n" + body
		}
	}
	return topic
}

// InsertSearchText indexes an event's text.
func (t *searchTable) InsertSearchText(ctx context.Context, tx *sql.Tx, ev persistence.EventNID, room persistence.RoomNID,
	keyID int64, pos persistence.StreamPos, text string,
) error {
	if t.fullText != FullTextTSVector {
		text = strings.ToLower(text)
	}
	if _, err := txStmt(ctx, tx, t.insert).ExecContext(ctx, ev, room, keyID, pos, text); err != nil {
		return err
	}
	if t.insertFTS5 != nil {
		_, err := txStmt(ctx, tx, t.insertFTS5).ExecContext(ctx, ev, text)
		return err
	}
	return nil
}

// DeleteSearchText removes the text of the event with this ID, if indexed.
func (t *searchTable) DeleteSearchText(ctx context.Context, tx *sql.Tx, eventID string) error {
	if t.deleteFTS5 != nil {
		if _, err := txStmt(ctx, tx, t.deleteFTS5).ExecContext(ctx, eventID); err != nil {
			return err
		}
	}
	_, err := txStmt(ctx, tx, t.delete).ExecContext(ctx, eventID)
	return err
}

// searchHit is a matching row before its event is read.
type searchHit struct {
	nid  int64
	rank float64
}

// matchArg is the $1 of the statements for these words of term.
func (t *searchTable) matchArg(term string, words []string) (string, error) {
	switch t.fullText {
	case FullTextTSVector:
		return strings.ReplaceAll(term, "\x00", ""), nil
	case FullTextFTS5:
		// Each word a quoted string: implicit AND, and no FTS5 syntax
		// from the user reaches the parser.
		var b bytes.Buffer
		for i, w := range words {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(`"` + strings.ReplaceAll(w, `"`, `""`) + `"`)
		}
		return b.String(), nil
	default:
		js, err := json.Marshal(words)
		return string(js), err
	}
}

// SelectSearchHits returns the matching rows of a page, in order.
func (t *searchTable) SelectSearchHits(ctx context.Context, match, rooms, keys string, q *persistence.SearchQuery) ([]searchHit, error) {
	var rows *sql.Rows
	var err error
	if q.ByRank {
		rows, err = t.selectRanked.QueryContext(ctx, match, rooms, keys, q.To, q.Offset, q.Limit)
	} else {
		rows, err = t.selectRecent.QueryContext(ctx, match, rooms, keys, q.To, q.Before, q.Limit)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []searchHit
	for rows.Next() {
		var h searchHit
		var rank sql.NullFloat64
		if err := rows.Scan(&h.nid, &rank); err != nil {
			return nil, err
		}
		h.rank = rank.Float64
		out = append(out, h)
	}
	return out, rows.Err()
}

// CountSearchHits counts the matching rows of every page.
func (t *searchTable) CountSearchHits(ctx context.Context, match, rooms, keys string, to persistence.StreamPos) (int, error) {
	var n int
	err := t.count.QueryRowContext(ctx, match, rooms, keys, to).Scan(&n)
	return n, err
}
