package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// The two drivers have no full text module in common: modernc.org/sqlite
// is built with FTS5 and without FTS3/4, github.com/mattn/go-sqlite3
// (without build tags) with FTS3/4 and without FTS5. The search index is
// therefore the plain table event_search (migration 11), which both
// drivers write, plus an FTS5 index over it that only modernc has:
//
//   - modernc creates event_search_fts (external content: the text stays
//     in event_search) and keeps it in the commit's transaction;
//   - mattn scans event_search for the words instead, and marks the FTS5
//     index stale, since it writes event_search without it;
//   - modernc rebuilds a stale index when it next opens the file.
//
// So a database file keeps opening with either driver, and search finds
// the same events through both.

const createFTSSQL = `
CREATE VIRTUAL TABLE IF NOT EXISTS event_search_fts USING fts5(
	body, content='event_search', content_rowid='event_nid', tokenize='unicode61 remove_diacritics 2'
)`

// ensureFTS creates the FTS5 index if missing and rebuilds it if stale.
func ensureFTS(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite.ensureFTS: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, createFTSSQL); err != nil {
		return fmt.Errorf("sqlite.ensureFTS: create: %w", err)
	}
	var fresh bool
	if err := tx.QueryRowContext(ctx, "SELECT fresh FROM event_search_fts_state").Scan(&fresh); err != nil {
		return fmt.Errorf("sqlite.ensureFTS: state: %w", err)
	}
	if fresh {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO event_search_fts (event_search_fts) VALUES ('rebuild')"); err != nil {
		return fmt.Errorf("sqlite.ensureFTS: rebuild: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE event_search_fts_state SET fresh = TRUE"); err != nil {
		return fmt.Errorf("sqlite.ensureFTS: state: %w", err)
	}
	return tx.Commit()
}

// markFTSStale records that event_search may change without the FTS5
// index following.
func markFTSStale(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, "UPDATE event_search_fts_state SET fresh = FALSE"); err != nil {
		return fmt.Errorf("sqlite.markFTSStale: %w", err)
	}
	return nil
}
