package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/soma-chat/soma/persistence/storagetest"
)

// relationsFixture is events written before migration 9: the migration
// must find the relations among them.
var relationsFixture = []string{
	"INSERT INTO rooms (room_nid, room_id, room_version) VALUES (1, '!r:test', '10')",
	`INSERT INTO events (event_nid, room_nid, event_id, event_type_nid, state_key_nid, depth, stream_pos,
		origin_server_ts, sender, state_before_nid, event_json)
	SELECT v.nid, 1, v.id, t.event_type_nid, 0, v.nid, v.nid, 0, '@u:test', 0, v.js
	FROM (
		SELECT 1 AS nid, '$root' AS id, '{"content":{"body":"root"}}' AS js
		UNION ALL SELECT 2, '$thread', '{"content":{"body":"t","m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}}'
		UNION ALL SELECT 3, '$reply', '{"content":{"m.relates_to":{"m.in_reply_to":{"event_id":"$root"}}}}'
		UNION ALL SELECT 4, '$badtype', '{"content":{"m.relates_to":{"rel_type":5,"event_id":"$root"}}}'
		UNION ALL SELECT 5, '$notobject', '{"content":{"m.relates_to":"x"}}'
		UNION ALL SELECT 6, '$nul', '{"content":{"body":"a\u0000b","m.relates_to":{"rel_type":"m.annotation","event_id":"$root","key":"k"}}}'
	) v, event_types t WHERE t.event_type = 'm.room.message'`,
}

// Events stored before the relations projection existed are found by it
// once migrated.
func TestMigrationToV9BackfillsRelations(t *testing.T) {
	for _, driver := range []string{DriverModernc, DriverMattn} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "soma.db")
			name, err := driverName(driver)
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open(name, path+"?"+connParams)
			if err != nil {
				t.Fatal(err)
			}
			qs := []string{"CREATE TABLE schema_versions (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)"}
			for _, m := range migrations[:8] {
				qs = append(qs, m.SQL, fmt.Sprintf("INSERT INTO schema_versions VALUES (%d, '%s', 0)", m.Version, m.Name))
			}
			for _, q := range append(qs, relationsFixture...) {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			db.Close()

			s, err := Open(ctx, path, Options{Driver: driver})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			storagetest.CheckRelationsBackfill(t, s)
		})
	}
}
