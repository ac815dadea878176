package storagetest

import (
	"context"
	"database/sql"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// testPing: Ping answers on an open store, honours its context, and fails
// once the schema is not the one the store migrated to (a newer build
// migrated a shared database further, or a migration was undone).
func testPing(t *testing.T, s persistence.Store) {
	noErr(t, "Ping", s.Ping(bg))
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping with a cancelled context succeeded")
	}

	withDB, ok := s.(interface{ DB() *sql.DB })
	if !ok {
		t.Skip("the store does not expose its database: schema checks not tested")
	}
	db := withDB.DB()
	var newest int
	noErr(t, "read schema version", db.QueryRowContext(bg, "SELECT MAX(version) FROM schema_versions").Scan(&newest))
	_, err := db.ExecContext(bg, "INSERT INTO schema_versions (version, name, applied_ts) VALUES ($1, 'from a newer build', 0)", newest+1)
	noErr(t, "record a newer version", err)
	if err := s.Ping(bg); err == nil {
		t.Fatal("Ping succeeded on a database with a newer schema")
	}
	_, err = db.ExecContext(bg, "DELETE FROM schema_versions WHERE version >= $1", newest)
	noErr(t, "undo the newest version", err)
	if err := s.Ping(bg); err == nil {
		t.Fatal("Ping succeeded on a database missing the newest migration")
	}
}
