package pgtest

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestDSNGivesEachTestAFreshDatabaseDroppedAfterIt(t *testing.T) {
	var names [2]string
	for i := range names {
		t.Run("test", func(t *testing.T) {
			db := open(t, DSN(t))
			if err := db.QueryRow("SELECT current_database()").Scan(&names[i]); err != nil {
				t.Fatal(err)
			}
			var tables int
			if err := db.QueryRow("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Errorf("fresh database has %d tables", tables)
			}
			if _, err := db.Exec("CREATE TABLE x (a INT)"); err != nil {
				t.Fatal(err)
			}
		})
	}
	if names[0] == "" || names[0] == names[1] {
		t.Fatalf("databases %q and %q, want two different ones", names[0], names[1])
	}
	if server.admin == nil {
		t.Skip("no server")
	}
	for _, n := range names {
		var exists bool
		if err := server.admin.QueryRow("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", n).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s still exists after its test", n)
		}
	}
}

func TestThrowawayClusterStartsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	if _, err := findBinaries(); err != nil {
		t.Skipf("no PostgreSQL binaries: %v", err)
	}
	// startCluster picks a free port and postgres binds it later: another
	// process of a loaded machine may take it in between. That is no
	// failure of the cluster's start-up; try another port.
	var dsn string
	var stop func()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if dsn, stop, err = startCluster(); err == nil || !strings.Contains(err.Error(), "already in use") {
			break
		}
		t.Logf("the port was taken before postgres bound it: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	db, err := connect(dsn)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	var one int
	err = db.QueryRowContext(context.Background(), "SELECT 1").Scan(&one)
	db.Close()
	stop()
	if err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	if _, err := connect(dsn); err == nil {
		t.Error("the cluster still accepts connections after stop")
	}
}

func TestWithDatabaseReplacesTheDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5/postgres?sslmode=disable", "postgres://u@h:5/db?sslmode=disable"},
		{"postgresql://u@h/", "postgresql://u@h/db"},
		{"host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=db"},
	} {
		got, err := withDatabase(tc.in, "db")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Errorf("parse %q: %v", got, err)
		} else if cfg.Database != "db" {
			t.Errorf("%q parses to database %q, want db", got, cfg.Database)
		}
	}
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
