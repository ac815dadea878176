package sqlite

import (
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
			s := openMigratedFrom(t, driver, 8, relationsFixture)
			storagetest.CheckRelationsBackfill(t, s)
		})
	}
}
