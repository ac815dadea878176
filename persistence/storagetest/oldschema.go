package storagetest

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/soma-chat/soma/persistence/sqlstore"
)

// WriteOldSchema applies migrations (a prefix of a backend's) to an empty
// database the way the store would have, then writes the fixture's rows:
// the starting point of a backend's test of a later migration.
func WriteOldSchema(t *testing.T, db *sql.DB, migrations []sqlstore.Migration, fixture []string) {
	t.Helper()
	qs := []string{"CREATE TABLE schema_versions (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)"}
	for _, m := range migrations {
		qs = append(qs, m.SQL, fmt.Sprintf("INSERT INTO schema_versions VALUES (%d, '%s', 0)", m.Version, m.Name))
	}
	for _, q := range append(qs, fixture...) {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
