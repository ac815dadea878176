package postgres

import (
	"testing"

	"github.com/soma-chat/soma/persistence/storagetest"
)

// Events stored before the search index existed are found by it once
// migrated; \u0000, which jsonb refuses, does not stop the migration.
func TestMigrationToV11BackfillsSearch(t *testing.T) {
	storagetest.CheckSearchBackfill(t, openMigratedFrom(t, 9, storagetest.SearchBackfillFixture))
}
