package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/soma-chat/soma/persistence/pgtest"
	"github.com/soma-chat/soma/persistence/sqlstore"
	"github.com/soma-chat/soma/persistence/storagetest"
)

// openMigratedFrom writes a database at schema version version holding
// the fixture's rows, then opens it (which migrates it to the newest
// schema). The store is closed when t ends.
func openMigratedFrom(t *testing.T, version int, fixture []string) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	storagetest.WriteOldSchema(t, db, migrations[:version], fixture)
	db.Close()
	s, err := Open(ctx, dsn, Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A database written by the first schema keeps finding its transactions
// by event once migrated.
func TestMigrationToV2KeepsTxnIDsFindableByEvent(t *testing.T) {
	ctx := context.Background()
	s := openMigratedFrom(t, 1, []string{
		"INSERT INTO rooms (room_nid, room_id, room_version) VALUES (1, '!r:test', '10')",
		`INSERT INTO events (event_nid, room_nid, event_id, event_type_nid, state_key_nid, depth, stream_pos,
			origin_server_ts, sender, state_before_nid, event_json)
		VALUES (7, 1, '$e', 13, 0, 1, 1, 0, '@u:test', 0, '{}')`,
		"INSERT INTO txn_ids (user_id, device_id, txn_id, event_id) VALUES ('@u:test', 'D', 't1', '$e')",
	})
	if txn, err := s.TxnIDForEvent(ctx, "$e", "@u:test", "D"); err != nil || txn != "t1" {
		t.Errorf("TxnIDForEvent after the migration = %q, %v; want t1", txn, err)
	}
	var nid int64
	if err := s.DB().QueryRowContext(ctx, "SELECT event_nid FROM txn_ids WHERE txn_id = 't1'").Scan(&nid); err != nil || nid != 7 {
		t.Errorf("the migrated txn's event NID = %d, %v; want 7", nid, err)
	}
}
