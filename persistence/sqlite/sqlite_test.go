package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/sqlite"
	"github.com/soma-chat/soma/persistence/storagetest"
)

var drivers = []string{sqlite.DriverModernc, sqlite.DriverMattn}

func open(t testing.TB, path, driver string) persistence.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Driver: driver})
	if err != nil {
		t.Fatalf("open %s with %s: %v", path, driver, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			storagetest.Run(t, func(t *testing.T) persistence.Store {
				// A directory that does not exist yet: Open creates it.
				return open(t, filepath.Join(t.TempDir(), "data", "soma.db"), driver)
			})
		})
	}
}

func TestReopen(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			storagetest.RunReopen(t, func(t *testing.T) func() persistence.Store {
				path := filepath.Join(t.TempDir(), "soma.db")
				return func() persistence.Store { return open(t, path, driver) }
			})
		})
	}
}

func TestBothDriversReadEachOthersFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soma.db")
	a := open(t, path, sqlite.DriverModernc)
	if err := a.CreateAccount(context.Background(), persistence.Account{Localpart: "alice", CreatedTS: 1}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b := open(t, path, sqlite.DriverMattn)
	if _, err := b.GetAccount(context.Background(), "alice"); err != nil {
		t.Fatalf("mattn reading modernc's file: %v", err)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ path, driver string }{
		"unknown driver": {filepath.Join(dir, "a.db"), "nope"},
		"no path":        {"", ""},
		"memory":         {":memory:", ""},
		"query in path":  {filepath.Join(dir, "a.db?mode=ro"), ""},
	} {
		if s, err := sqlite.Open(context.Background(), tc.path, sqlite.Options{Driver: tc.driver}); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func BenchmarkCommitSingleEvent(b *testing.B) {
	for _, driver := range drivers {
		b.Run(driver, func(b *testing.B) {
			storagetest.BenchCommitSingleEvent(b, open(b, filepath.Join(b.TempDir(), "soma.db"), driver))
		})
	}
}

func BenchmarkCommitParallelRooms(b *testing.B) {
	for _, driver := range drivers {
		b.Run(driver, func(b *testing.B) {
			storagetest.BenchCommitParallelRooms(b, open(b, filepath.Join(b.TempDir(), "soma.db"), driver), 4)
		})
	}
}

// BenchmarkCommitGrowth: sends to one room and to 16 at once, on a database
// already holding 0, 20,000 and 100,000 events.
func BenchmarkCommitGrowth(b *testing.B) {
	for _, driver := range drivers {
		for _, prefill := range storagetest.GrowthPrefills {
			for _, rooms := range []int{1, 16} {
				b.Run(fmt.Sprintf("%s/events=%d/rooms=%d", driver, prefill, rooms), func(b *testing.B) {
					storagetest.BenchCommitGrowth(b, open(b, filepath.Join(b.TempDir(), "soma.db"), driver), prefill, rooms)
				})
			}
		}
	}
}

// Only modernc has FTS5: what mattn writes and redacts meanwhile reaches
// the FTS5 index when modernc opens the file again.
func TestSearchFollowsADriverSwitch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soma.db")
	opener := func(driver string) func() persistence.Store {
		return func() persistence.Store { return open(t, path, driver) }
	}
	storagetest.RunSearchAcrossOpens(t, opener(sqlite.DriverModernc), opener(sqlite.DriverMattn), opener(sqlite.DriverModernc), opener(sqlite.DriverMattn))
}
