package postgres

import (
	"testing"

	"github.com/soma-chat/soma/persistence/storagetest"
)

// Events stored before the relations projection existed are found by it
// once migrated; \u0000, which jsonb refuses, does not stop the migration.
func TestMigrationToV9BackfillsRelations(t *testing.T) {
	s := openMigratedFrom(t, 8, []string{
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
	})
	storagetest.CheckRelationsBackfill(t, s)
}
