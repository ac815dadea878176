package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// state_blocks: (block NID, event type NID, state key NID, event NID)
// tuples. A block is written once and never changed.

const insertStateBlockWithOneEntrySQL = `
INSERT INTO state_blocks (block_nid, event_type_nid, state_key_nid, event_nid)
VALUES ({next_state_block_nid}, $1, $2, $3)
RETURNING block_nid`

const selectNextStateBlockNIDSQL = "SELECT {next_state_block_nid}"

// bulkInsertStateBlockEntriesSQL is completed with one "($1, $n, $n+1, $n+2)"
// per entry.
const bulkInsertStateBlockEntriesSQL = "INSERT INTO state_blocks (block_nid, event_type_nid, state_key_nid, event_nid) VALUES "

const bulkSelectStateBlockEntriesSQL = `
SELECT block_nid, event_type_nid, state_key_nid, event_nid FROM state_blocks
WHERE IN_NIDS(block_nid, $1)`

const bulkSelectStateBlockEntriesByKeySQL = `
SELECT sb.block_nid, sb.event_nid FROM state_blocks sb
JOIN event_types t ON t.event_type_nid = sb.event_type_nid
JOIN event_state_keys k ON k.state_key_nid = sb.state_key_nid
WHERE IN_NIDS(sb.block_nid, $1) AND t.event_type = $2 AND k.state_key = $3`

// selectStateBlockEntriesWithIDsSQL reads blocks as strings for tools; the
// outer joins let a dangling NID be reported rather than drop the entry.
const selectStateBlockEntriesWithIDsSQL = `
SELECT sb.block_nid, t.event_type, k.state_key, sb.event_nid, e.event_id FROM state_blocks sb
LEFT JOIN event_types t ON t.event_type_nid = sb.event_type_nid
LEFT JOIN event_state_keys k ON k.state_key_nid = sb.state_key_nid
LEFT JOIN events e ON e.event_nid = sb.event_nid
WHERE IN_NIDS(sb.block_nid, $1)
ORDER BY sb.block_nid, sb.event_type_nid, sb.state_key_nid`

// stateBlockInsertChunk bounds the entries per INSERT (3 parameters each),
// well under both databases' parameter limits.
const stateBlockInsertChunk = 1000

type stateBlocksTable struct {
	d                                *Dialect
	insertStateBlockWithOneEntry     *sql.Stmt
	selectNextStateBlockNID          *sql.Stmt
	bulkSelectStateBlockEntries      *sql.Stmt
	bulkSelectStateBlockEntriesByKey *sql.Stmt
	selectStateBlockEntriesWithIDs   *sql.Stmt
}

func prepareStateBlocksTable(p *preparer) *stateBlocksTable {
	return &stateBlocksTable{
		d:                                p.d,
		insertStateBlockWithOneEntry:     p.prepare(insertStateBlockWithOneEntrySQL),
		selectNextStateBlockNID:          p.prepare(selectNextStateBlockNIDSQL),
		bulkSelectStateBlockEntries:      p.prepare(bulkSelectStateBlockEntriesSQL),
		bulkSelectStateBlockEntriesByKey: p.prepare(bulkSelectStateBlockEntriesByKeySQL),
		selectStateBlockEntriesWithIDs:   p.prepare(selectStateBlockEntriesWithIDsSQL),
	}
}

// stateKeyTuple is what a state entry is about.
type stateKeyTuple struct {
	Type persistence.EventTypeNID
	Key  persistence.StateKeyNID
}

// stateEntry says which event is the state for a tuple.
type stateEntry struct {
	stateKeyTuple
	Event persistence.EventNID
}

// InsertStateBlockWithOneEntry writes a new block holding one entry.
func (t *stateBlocksTable) InsertStateBlockWithOneEntry(ctx context.Context, tx *sql.Tx, e stateEntry) (persistence.StateBlockNID, error) {
	var nid persistence.StateBlockNID
	err := txStmt(ctx, tx, t.insertStateBlockWithOneEntry).QueryRowContext(ctx, e.Type, e.Key, e.Event).Scan(&nid)
	if err != nil {
		return 0, err
	}
	if nid <= 0 {
		return 0, fmt.Errorf("state_blocks: bad block NID %d assigned", nid)
	}
	return nid, nil
}

// InsertStateBlock writes a new block holding entries.
func (t *stateBlocksTable) InsertStateBlock(ctx context.Context, tx *sql.Tx, entries []stateEntry) (persistence.StateBlockNID, error) {
	var nid persistence.StateBlockNID
	if err := txStmt(ctx, tx, t.selectNextStateBlockNID).QueryRowContext(ctx).Scan(&nid); err != nil {
		return 0, err
	}
	if nid <= 0 {
		return 0, fmt.Errorf("state_blocks: bad block NID %d assigned", nid)
	}
	for len(entries) > 0 {
		chunk := entries[:min(len(entries), stateBlockInsertChunk)]
		entries = entries[len(chunk):]
		var q strings.Builder
		q.WriteString(bulkInsertStateBlockEntriesSQL)
		args := make([]any, 1, 1+3*len(chunk))
		args[0] = nid
		for i, e := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "($1, $%d, $%d, $%d)", len(args)+1, len(args)+2, len(args)+3)
			args = append(args, e.Type, e.Key, e.Event)
		}
		query, err := t.d.rewrite(q.String())
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return 0, err
		}
	}
	return nid, nil
}

// BulkSelectStateBlockEntries calls fn with every entry of the blocks.
func (t *stateBlocksTable) BulkSelectStateBlockEntries(ctx context.Context, tx *sql.Tx, blocks []persistence.StateBlockNID, fn func(persistence.StateBlockNID, stateEntry) error) error {
	rows, err := txStmt(ctx, tx, t.bulkSelectStateBlockEntries).QueryContext(ctx, t.d.formatNIDs(blockNIDsToInt64(blocks)))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b persistence.StateBlockNID
		var e stateEntry
		if err := rows.Scan(&b, &e.Type, &e.Key, &e.Event); err != nil {
			return err
		}
		if err := fn(b, e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// BulkSelectStateBlockEntriesByKey calls fn with the block and event of
// every entry for (eventType, stateKey) in the blocks.
func (t *stateBlocksTable) BulkSelectStateBlockEntriesByKey(ctx context.Context, blocks []persistence.StateBlockNID, eventType, stateKey string, fn func(persistence.StateBlockNID, persistence.EventNID) error) error {
	rows, err := t.bulkSelectStateBlockEntriesByKey.QueryContext(ctx, t.d.formatNIDs(blockNIDsToInt64(blocks)), eventType, stateKey)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b persistence.StateBlockNID
		var ev persistence.EventNID
		if err := rows.Scan(&b, &ev); err != nil {
			return err
		}
		if err := fn(b, ev); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SelectStateBlockEntriesWithIDs returns the entries of the blocks with
// their type, state key and event ID, ordered by block.
func (t *stateBlocksTable) SelectStateBlockEntriesWithIDs(ctx context.Context, blocks []persistence.StateBlockNID) ([]persistence.StateBlockEntry, error) {
	rows, err := t.selectStateBlockEntriesWithIDs.QueryContext(ctx, t.d.formatNIDs(blockNIDsToInt64(blocks)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.StateBlockEntry
	for rows.Next() {
		var e persistence.StateBlockEntry
		var typ, key, eventID sql.NullString
		if err := rows.Scan(&e.Block, &typ, &key, &e.EventNID, &eventID); err != nil {
			return nil, err
		}
		if !typ.Valid || !key.Valid {
			return nil, fmt.Errorf("state block %d: an entry's type or state key NID is not stored", e.Block)
		}
		e.Type, e.StateKey, e.EventID = typ.String, key.String, eventID.String
		out = append(out, e)
	}
	return out, rows.Err()
}
