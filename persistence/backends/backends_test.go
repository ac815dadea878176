package backends_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/backends"
	"github.com/soma-chat/soma/persistence/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestOpenGivesAWorkingStoreForEachBackend(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]func(t *testing.T) backends.Config{
		"sqlite modernc": func(t *testing.T) backends.Config {
			return backends.Config{Backend: backends.SQLite, SQLitePath: filepath.Join(dir, "m", "soma.db")}
		},
		"sqlite mattn": func(t *testing.T) backends.Config {
			return backends.Config{Backend: backends.SQLite, SQLitePath: filepath.Join(dir, "c", "soma.db"), SQLiteDriver: "mattn"}
		},
		"postgres": func(t *testing.T) backends.Config {
			return backends.Config{Backend: backends.Postgres, PostgresDSN: pgtest.DSN(t), MaxOpenConns: 2}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := backends.Open(context.Background(), cfg(t))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if err := s.CreateAccount(context.Background(), persistence.Account{Localpart: "alice", CreatedTS: 1}); err != nil {
				t.Fatalf("CreateAccount: %v", err)
			}
		})
	}
}

func TestOpenRejectsIncompleteConfigs(t *testing.T) {
	for name, cfg := range map[string]backends.Config{
		"no backend":       {},
		"unknown backend":  {Backend: "mysql"},
		"sqlite, no path":  {Backend: backends.SQLite},
		"postgres, no DSN": {Backend: backends.Postgres},
		"bad driver":       {Backend: backends.SQLite, SQLitePath: filepath.Join(t.TempDir(), "x.db"), SQLiteDriver: "cgo"},
	} {
		s, err := backends.Open(context.Background(), cfg)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		} else if s != nil {
			t.Errorf("%s: Open returned a non-nil store with its error", name)
		}
	}
}
