// Package sqlite opens Soma's store on an embedded SQLite file, through
// either modernc.org/sqlite (pure Go, the default) or
// github.com/mattn/go-sqlite3 (cgo).
//
// Every connection runs in WAL mode with synchronous=FULL (a commit is on
// disk before CommitEvents returns), a busy timeout and foreign keys on;
// transactions begin IMMEDIATE, taking the write lock up front rather than
// failing to upgrade a read lock, and the store queues its own writers in
// process (SQLite admits one at a time).
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
	_ "modernc.org/sqlite"          // registers "sqlite"

	"github.com/soma-chat/soma/persistence/sqlstore"
)

// The drivers Open accepts.
const (
	DriverModernc = "modernc" // modernc.org/sqlite, pure Go
	DriverMattn   = "mattn"   // github.com/mattn/go-sqlite3, cgo
)

// Options choose the driver and size the connection pool.
type Options struct {
	// Driver is DriverModernc (the default when empty) or DriverMattn.
	Driver string
	// MaxOpenConns bounds the pool (readers run in parallel; writers take
	// turns); 0 means max(4, GOMAXPROCS).
	MaxOpenConns int
}

// connParams are understood alike by both drivers.
const connParams = "_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate"

// Dialect is SQLite as the shared store needs to know it, through the
// given driver (which decides how search matches words, see fulltext.go).
// Writes are serialised, so the next stream position and block NID are one
// more than the highest stored (an index lookup).
func Dialect(driver string) sqlstore.Dialect {
	d := sqlstore.Dialect{
		Name:       "sqlite",
		Migrations: migrations,
		// One stream for events, account data, receipts, to-device
		// messages and device list changes; stream_high (kept by
		// triggers) is its high-water mark, and the single writer makes
		// one past it safe.
		NextStreamPos:          "(SELECT pos + 1 FROM stream_high)",
		NextOutlierPos:         "(SELECT MIN(COALESCE(MIN(stream_pos), 0), 0) - 1 FROM events)",
		NextStateBlockNID:      "(SELECT COALESCE(MAX(block_nid), 0) + 1 FROM state_blocks)",
		InNIDs:                 "%[1]s IN (SELECT value FROM json_each(%[2]s))",
		NIDList:                "[%s]",
		ServerOf:               "substr(%[1]s, instr(%[1]s, ':') + 1)",
		NumberedQuestionMarks:  true,
		LimitParamAsExpression: true,
		SingleWriter:           true,
	}
	if driver == DriverMattn {
		d.FullText, d.AfterMigrate = sqlstore.FullTextScan, markFTSStale
	} else {
		d.FullText, d.AfterMigrate = sqlstore.FullTextFTS5, ensureFTS
	}
	return d
}

// Open opens (creating it and its directory if missing) the database file
// at path, migrates it and returns the store.
func Open(ctx context.Context, path string, opts Options) (*sqlstore.Store, error) {
	driverName, err := driverName(opts.Driver)
	if err != nil {
		return nil, fmt.Errorf("sqlite.Open: %w", err)
	}
	switch {
	case path == "":
		return nil, fmt.Errorf("sqlite.Open: no database path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite.Open: %q: give the path of a file", path)
	case strings.Contains(path, "?"):
		return nil, fmt.Errorf("sqlite.Open: %q: a path with '?' is not supported", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite.Open: %w", err)
	}
	db, err := sql.Open(driverName, path+"?"+connParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite.Open: %w", err)
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	if err := checkDurable(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite.Open %s (%s): %w", path, opts.Driver, err)
	}
	store, err := sqlstore.Open(ctx, db, Dialect(opts.Driver))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite.Open %s: %w", path, err)
	}
	return store, nil
}

func driverName(driver string) (string, error) {
	switch driver {
	case "", DriverModernc:
		return "sqlite", nil
	case DriverMattn:
		return "sqlite3", nil
	}
	return "", fmt.Errorf("unknown SQLite driver %q (want %q or %q)", driver, DriverModernc, DriverMattn)
}

// checkDurable verifies that the connection settings took: a driver that
// silently ignored them would make commits lose data on power loss.
func checkDurable(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var mode string
	var sync int
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") || sync != 2 {
		return fmt.Errorf("journal_mode is %q and synchronous %d, want wal and 2 (FULL)", mode, sync)
	}
	return nil
}
