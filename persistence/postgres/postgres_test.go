package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/pgtest"
	"github.com/soma-chat/soma/persistence/postgres"
	"github.com/soma-chat/soma/persistence/storagetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t testing.TB, dsn string) persistence.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, postgres.Options{MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) persistence.Store { return open(t, pgtest.DSN(t)) })
}

func TestReopen(t *testing.T) {
	storagetest.RunReopen(t, func(t *testing.T) func() persistence.Store {
		dsn := pgtest.DSN(t)
		return func() persistence.Store { return open(t, dsn) }
	})
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), dsn, postgres.Options{MaxOpenConns: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent open: %v", err)
		}
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	if s, err := postgres.Open(context.Background(), "postgres://nobody@127.0.0.1:1/x?connect_timeout=1", postgres.Options{}); err == nil {
		s.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
}

func BenchmarkCommitSingleEvent(b *testing.B) {
	storagetest.BenchCommitSingleEvent(b, open(b, pgtest.DSN(b)))
}

func BenchmarkCommitParallelRooms(b *testing.B) {
	storagetest.BenchCommitParallelRooms(b, open(b, pgtest.DSN(b)), 4)
}

// BenchmarkCommitGrowth: sends to one room and to 16 at once, on a database
// already holding 0, 20,000 and 100,000 events.
func BenchmarkCommitGrowth(b *testing.B) {
	for _, prefill := range storagetest.GrowthPrefills {
		for _, rooms := range []int{1, 16} {
			b.Run(fmt.Sprintf("events=%d/rooms=%d", prefill, rooms), func(b *testing.B) {
				storagetest.BenchCommitGrowth(b, open(b, pgtest.DSN(b)), prefill, rooms)
			})
		}
	}
}
