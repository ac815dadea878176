package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

const schemaVersionsSchema = `
CREATE TABLE IF NOT EXISTS schema_versions (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_ts BIGINT NOT NULL
)`

const selectSchemaVersionsSQL = "SELECT version FROM schema_versions ORDER BY version"

// selectSchemaVersionSQL is Ping's query: the newest migration applied.
const selectSchemaVersionSQL = "SELECT COALESCE(MAX(version), 0) FROM schema_versions"

const insertSchemaVersionSQL = "INSERT INTO schema_versions (version, name, applied_ts) VALUES ($1, $2, $3)"

// migrate brings the database to the dialect's newest schema in one
// transaction: either every missing migration is applied or none is.
func migrate(ctx context.Context, db *sql.DB, d *Dialect) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore.migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, d.MigrationLock); err != nil {
			return fmt.Errorf("sqlstore.migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, schemaVersionsSchema); err != nil {
		return fmt.Errorf("sqlstore.migrate: create schema_versions: %w", err)
	}
	applied := map[int]bool{}
	rows, err := tx.QueryContext(ctx, selectSchemaVersionsSQL)
	if err != nil {
		return fmt.Errorf("sqlstore.migrate: select versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("sqlstore.migrate: select versions: %w", err)
		}
		if v < 1 || v > len(d.Migrations) {
			rows.Close()
			return fmt.Errorf("sqlstore.migrate: the database has schema version %d, which this build of Soma does not know (it knows 1 to %d): is it newer than this build?", v, len(d.Migrations))
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlstore.migrate: select versions: %w", err)
	}
	insertVersion, err := d.rewrite(insertSchemaVersionSQL)
	if err != nil {
		return err
	}
	for _, m := range d.Migrations {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlstore.migrate: %s migration %d (%s): %w", d.Name, m.Version, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, insertVersion, m.Version, m.Name, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("sqlstore.migrate: record version %d: %w", m.Version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore.migrate: commit: %w", err)
	}
	return nil
}
