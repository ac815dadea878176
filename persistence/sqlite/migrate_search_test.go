package sqlite

import (
	"testing"

	"github.com/soma-chat/soma/persistence/storagetest"
)

// Events stored before the search index existed are found by it once
// migrated, through either driver (modernc builds its FTS5 index from the
// backfilled rows).
func TestMigrationToV11BackfillsSearch(t *testing.T) {
	for _, driver := range []string{DriverModernc, DriverMattn} {
		t.Run(driver, func(t *testing.T) {
			storagetest.CheckSearchBackfill(t, openMigratedFrom(t, driver, 9, storagetest.SearchBackfillFixture))
		})
	}
}
