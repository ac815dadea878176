// Package pgtest gives each test its own fresh PostgreSQL database.
//
// The server is, in order: the one SOMA_TEST_POSTGRES names (a DSN of a
// role that may create databases); the local one on 127.0.0.1:5432 as user
// postgres; a throwaway cluster made with the machine's initdb and started
// on a free port (as user nobody when running as root), stopped by Main.
// When none can be had, tests skip with one loud line, or fail when the
// environment variable CI is set.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// EnvDSN names the environment variable that points tests at a server.
const EnvDSN = "SOMA_TEST_POSTGRES"

// LocalDSN is the local server tried when EnvDSN is unset.
const LocalDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3"

var server struct {
	once  sync.Once
	dsn   string  // the server's maintenance database
	admin *sql.DB // creates and drops the test databases
	stop  func()  // stops a throwaway cluster; nil otherwise
	err   error
}

// DSN returns the DSN of a new, empty database on the test server, dropped
// when t ends. It skips t (fails it, under CI) when there is no server.
func DSN(t testing.TB) string {
	t.Helper()
	server.once.Do(findServer)
	if server.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: no PostgreSQL server for the tests: %v", server.err)
		}
		t.Skipf("pgtest: !!! SKIPPING POSTGRESQL TESTS: no server (%v); set %s to a DSN to run them", server.err, EnvDSN)
	}
	name := "soma_test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := server.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := server.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(server.dsn, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// Main runs the tests, then stops the throwaway cluster if one was started
// for them. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without it, a throwaway cluster still dies with the test process, but its
// temporary directory stays behind.
func Main(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop closes the connection to the server and stops the throwaway cluster,
// if one was started. DSN cannot be used afterwards.
func Stop() {
	server.once.Do(func() { server.err = errors.New("pgtest: stopped") })
	if server.admin != nil {
		server.admin.Close()
		server.admin = nil
	}
	if server.stop != nil {
		server.stop()
		server.stop = nil
	}
	server.err = errors.New("pgtest: stopped")
}

func findServer() {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		server.dsn = dsn
		server.admin, server.err = connect(dsn)
		if server.err != nil {
			server.err = fmt.Errorf("%s=%q: %w", EnvDSN, dsn, server.err)
		}
		return
	}
	var errLocal error
	if server.admin, errLocal = connect(LocalDSN); errLocal == nil {
		server.dsn = LocalDSN
		return
	}
	dsn, stop, err := startCluster()
	if err != nil {
		server.err = fmt.Errorf("local server: %v; throwaway cluster: %w", errLocal, err)
		return
	}
	if server.admin, err = connect(dsn); err != nil {
		stop()
		server.err = fmt.Errorf("throwaway cluster: %w", err)
		return
	}
	server.dsn, server.stop = dsn, stop
}

func connect(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// key=value: a later key overrides an earlier one.
	return dsn + " dbname=" + name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
