// Package postgres opens Soma's store on PostgreSQL through pgx/v5 (its
// database/sql driver, which caches prepared statements per connection).
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/soma-chat/soma/persistence/sqlstore"
)

// Options tune the connection pool.
type Options struct {
	// MaxOpenConns bounds the pool; 0 means DefaultMaxOpenConns.
	MaxOpenConns int
}

// DefaultMaxOpenConns is the pool size when Options leave it unset.
const DefaultMaxOpenConns = 16

// Dialect is PostgreSQL as the shared store needs to know it.
func Dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:       "postgres",
		Migrations: migrations,
		// One key for every Soma schema in a database; only migrations take it.
		MigrationLock:     "SELECT pg_advisory_xact_lock(7262211)",
		NextStreamPos:     "nextval('stream_pos_seq')",
		NextOutlierPos:    "-nextval('outlier_pos_seq')",
		NextStateBlockNID: "nextval('state_block_nid_seq')",
		InNIDs:            "%[1]s = ANY(%[2]s::BIGINT[])",
		NIDList:           "{%s}",
		ServerOf:          "substr(%[1]s, strpos(%[1]s, ':') + 1)",
		FullText:          sqlstore.FullTextTSVector,
	}
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), migrates it and returns the store.
func Open(ctx context.Context, dsn string, opts Options) (*sqlstore.Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres.Open: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	n := opts.MaxOpenConns
	if n <= 0 {
		n = DefaultMaxOpenConns
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres.Open: %w", err)
	}
	store, err := sqlstore.Open(ctx, db, Dialect())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres.Open: %w", err)
	}
	return store, nil
}
