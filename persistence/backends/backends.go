// Package backends opens the store a configuration names: the one factory
// the server and the CLI call, so that nothing else imports a backend.
package backends

import (
	"context"
	"fmt"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/postgres"
	"github.com/soma-chat/soma/persistence/sqlite"
)

// The backends Open accepts.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Config says which backend to open and how.
type Config struct {
	// Backend is SQLite or Postgres.
	Backend string
	// SQLitePath is the database file (its directory is created if missing).
	SQLitePath string
	// SQLiteDriver is sqlite.DriverModernc (default) or sqlite.DriverMattn.
	SQLiteDriver string
	// PostgresDSN is a postgres:// URL or key=value connection string.
	PostgresDSN string
	// MaxOpenConns bounds the connection pool; 0 means the backend's default.
	MaxOpenConns int
}

// Open opens, migrating it if needed, the store cfg names.
func Open(ctx context.Context, cfg Config) (persistence.Store, error) {
	switch cfg.Backend {
	case SQLite:
		if cfg.SQLitePath == "" {
			return nil, fmt.Errorf("backends.Open: the sqlite backend needs a database path")
		}
		s, err := sqlite.Open(ctx, cfg.SQLitePath, sqlite.Options{Driver: cfg.SQLiteDriver, MaxOpenConns: cfg.MaxOpenConns})
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	case Postgres:
		if cfg.PostgresDSN == "" {
			return nil, fmt.Errorf("backends.Open: the postgres backend needs a DSN")
		}
		s, err := postgres.Open(ctx, cfg.PostgresDSN, postgres.Options{MaxOpenConns: cfg.MaxOpenConns})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("backends.Open: unknown backend %q (want %q or %q)", cfg.Backend, SQLite, Postgres)
}
