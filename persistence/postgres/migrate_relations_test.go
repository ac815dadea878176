package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/soma-chat/soma/persistence/pgtest"
	"github.com/soma-chat/soma/persistence/storagetest"
)

// Events stored before the relations projection existed are found by it
// once migrated; \u0000, which jsonb refuses, does not stop the migration.
func TestMigrationToV9BackfillsRelations(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	qs := []string{"CREATE TABLE schema_versions (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)"}
	for _, m := range migrations[:8] {
		qs = append(qs, m.SQL, fmt.Sprintf("INSERT INTO schema_versions VALUES (%d, '%s', 0)", m.Version, m.Name))
	}
	qs = append(qs,
		"INSERT INTO rooms (room_nid, room_id, room_version) VALUES (1, '!r:test', '10')",
		`INSERT INTO events (event_nid, room_nid, event_id, event_type_nid, state_key_nid, depth, stream_pos,
			origin_server_ts, sender, state_before_nid, event_json)
		SELECT v.nid, 1, v.id, t.event_type_nid, 0, v.nid, v.nid, 0, '@u:test', 0, v.js
		FROM (VALUES
			(1, '$root', '{"content":{"body":"root"}}'),
			(2, '$thread', '{"content":{"body":"t","m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}}'),
			(3, '$reply', '{"content":{"m.relates_to":{"m.in_reply_to":{"event_id":"$root"}}}}'),
			(4, '$badtype', '{"content":{"m.relates_to":{"rel_type":5,"event_id":"$root"}}}'),
			(5, '$notobject', '{"content":{"m.relates_to":"x"}}'),
			(6, '$nul', '{"content":{"body":"a\u0000b","m.relates_to":{"rel_type":"m.annotation","event_id":"$root","key":"k"}}}')
		) AS v(nid, id, js), event_types t WHERE t.event_type = 'm.room.message'`,
	)
	for _, q := range qs {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(ctx, dsn, Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storagetest.CheckRelationsBackfill(t, s)
}
