package sqlite

import "github.com/soma-chat/soma/persistence/sqlstore"

// migrations is the schema, oldest first. A released migration is never
// edited: a change is a new migration appended here.
var migrations = []sqlstore.Migration{
	{Version: 1, Name: "initial schema", SQL: schemaV1},
	{Version: 2, Name: "txn_ids found by event NID", SQL: schemaV2},
	{Version: 3, Name: "account data and receipts", SQL: schemaV3},
	{Version: 4, Name: "end-to-end keys, to-device messages, device list changes", SQL: schemaV4},
	{Version: 5, Name: "media repository", SQL: schemaV5},
	{Version: 6, Name: "room aliases and the public room list", SQL: schemaV6},
	{Version: 7, Name: "redactions", SQL: schemaV7},
	{Version: 8, Name: "cross-signing keys and signatures, server-side key backup", SQL: schemaV8},
	{Version: 9, Name: "relations, events by timestamp", SQL: schemaV9},
	{Version: 10, Name: "remote servers' signing keys", SQL: schemaV10},
	{Version: 11, Name: "event search", SQL: schemaV11},
	{Version: 12, Name: "pushers", SQL: schemaV12},
	{Version: 13, Name: "outlier events, rejected events", SQL: schemaV13},
	{Version: 14, Name: "outbound federation queue", SQL: schemaV14},
}

// Tables keyed by a composite primary key are WITHOUT ROWID: the key is the
// row's storage order and needs no second index. Block lists are JSON
// arrays of NIDs.
const schemaV1 = `
CREATE TABLE accounts (
	localpart     TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL,
	is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
	deactivated   BOOLEAN NOT NULL DEFAULT FALSE,
	created_ts    INTEGER NOT NULL
);

CREATE TABLE devices (
	localpart    TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	display_name TEXT NOT NULL,
	token_hash   TEXT NOT NULL,
	created_ts   INTEGER NOT NULL,
	PRIMARY KEY (localpart, device_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX devices_token_hash_idx ON devices (token_hash);

CREATE TABLE profiles (
	localpart    TEXT PRIMARY KEY,
	display_name TEXT NOT NULL,
	avatar_url   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE rooms (
	room_nid     INTEGER PRIMARY KEY,
	room_id      TEXT NOT NULL UNIQUE,
	room_version TEXT NOT NULL
);

CREATE TABLE room_heads (
	room_nid     INTEGER PRIMARY KEY,
	snapshot_nid INTEGER NOT NULL,
	block_nids   TEXT NOT NULL,
	extremities  TEXT NOT NULL,
	depth        INTEGER NOT NULL,
	epoch        INTEGER NOT NULL
);

CREATE TABLE event_types (
	event_type_nid INTEGER PRIMARY KEY,
	event_type     TEXT NOT NULL UNIQUE
);
INSERT INTO event_types (event_type_nid, event_type) VALUES
	(1, 'm.room.create'),
	(2, 'm.room.power_levels'),
	(3, 'm.room.join_rules'),
	(4, 'm.room.member'),
	(5, 'm.room.third_party_invite'),
	(6, 'm.room.name'),
	(7, 'm.room.topic'),
	(8, 'm.room.history_visibility'),
	(9, 'm.room.guest_access'),
	(10, 'm.room.canonical_alias'),
	(11, 'm.room.avatar'),
	(12, 'm.room.encryption'),
	(13, 'm.room.message'),
	(14, 'm.room.redaction');

CREATE TABLE event_state_keys (
	state_key_nid INTEGER PRIMARY KEY,
	state_key     TEXT NOT NULL UNIQUE
);
INSERT INTO event_state_keys (state_key_nid, state_key) VALUES (1, '');

CREATE TABLE events (
	event_nid        INTEGER PRIMARY KEY,
	room_nid         INTEGER NOT NULL,
	event_id         TEXT NOT NULL UNIQUE,
	event_type_nid   INTEGER NOT NULL,
	state_key_nid    INTEGER NOT NULL,
	depth            INTEGER NOT NULL,
	stream_pos       INTEGER NOT NULL UNIQUE,
	origin_server_ts INTEGER NOT NULL,
	sender           TEXT NOT NULL,
	state_before_nid INTEGER NOT NULL,
	event_json       TEXT NOT NULL
);
CREATE INDEX events_room_stream_idx ON events (room_nid, stream_pos);
CREATE INDEX events_room_state_stream_idx ON events (room_nid, stream_pos) WHERE state_key_nid <> 0;

CREATE TABLE state_blocks (
	block_nid      INTEGER NOT NULL,
	event_type_nid INTEGER NOT NULL,
	state_key_nid  INTEGER NOT NULL,
	event_nid      INTEGER NOT NULL,
	PRIMARY KEY (block_nid, event_type_nid, state_key_nid)
) WITHOUT ROWID;

CREATE TABLE state_snapshots (
	snapshot_nid INTEGER PRIMARY KEY,
	room_nid     INTEGER NOT NULL,
	block_nids   TEXT NOT NULL
);

CREATE TABLE current_state (
	room_nid       INTEGER NOT NULL,
	event_type_nid INTEGER NOT NULL,
	state_key_nid  INTEGER NOT NULL,
	event_nid      INTEGER NOT NULL,
	PRIMARY KEY (room_nid, event_type_nid, state_key_nid)
) WITHOUT ROWID;

CREATE TABLE memberships (
	room_nid   INTEGER NOT NULL,
	user_id    TEXT NOT NULL,
	membership TEXT NOT NULL,
	event_nid  INTEGER NOT NULL,
	stream_pos INTEGER NOT NULL,
	forgotten  BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (room_nid, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE txn_ids (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	txn_id    TEXT NOT NULL,
	event_id  TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
) WITHOUT ROWID;
CREATE INDEX txn_ids_event ON txn_ids (event_id);
`

// schemaV2 finds a transaction by its event's NID rather than its event ID.
// Event IDs are hashes: an index on them takes each send at a random leaf,
// which once the index outgrows the page cache costs a read, a WAL frame
// and a checkpoint write per send, and txn_ids' entries (the ID and the
// whole primary key) are the widest of the two such indexes. NIDs grow
// with every event, so their index only ever appends to its last leaf.
const schemaV2 = `
ALTER TABLE txn_ids ADD COLUMN event_nid INTEGER NOT NULL DEFAULT 0;
UPDATE txn_ids SET event_nid = COALESCE((SELECT e.event_nid FROM events e WHERE e.event_id = txn_ids.event_id), 0);
DROP INDEX txn_ids_event;
CREATE INDEX txn_ids_event_nid_idx ON txn_ids (event_nid);
`

// schemaV3 adds the streams beside room events: account data and receipts.
// Their positions come from the events' stream (see NextStreamPos).
const schemaV3 = `
CREATE TABLE account_data (
	user_id    TEXT NOT NULL,
	room_id    TEXT NOT NULL,
	data_type  TEXT NOT NULL,
	content    TEXT NOT NULL,
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, room_id, data_type)
) WITHOUT ROWID;
CREATE INDEX account_data_user_stream_idx ON account_data (user_id, stream_pos);
CREATE INDEX account_data_stream_idx ON account_data (stream_pos);

CREATE TABLE receipts (
	room_nid     INTEGER NOT NULL,
	user_id      TEXT NOT NULL,
	receipt_type TEXT NOT NULL,
	thread_id    TEXT NOT NULL,
	event_id     TEXT NOT NULL,
	ts           INTEGER NOT NULL,
	stream_pos   INTEGER NOT NULL,
	PRIMARY KEY (room_nid, user_id, receipt_type, thread_id)
) WITHOUT ROWID;
CREATE INDEX receipts_room_stream_idx ON receipts (room_nid, stream_pos);
CREATE INDEX receipts_stream_idx ON receipts (stream_pos);
`

// schemaV4 adds end-to-end encryption keys, to-device messages and device
// list changes, and moves the stream's high-water mark into stream_high,
// kept by triggers: to-device rows are deleted once delivered, so the
// highest stored position may go down, and a position must never be
// handed out twice.
const schemaV4 = `
CREATE TABLE device_keys (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	key_json   TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE one_time_keys (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, algorithm, key_id)
) WITHOUT ROWID;

CREATE TABLE fallback_keys (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	used      BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, device_id, algorithm)
) WITHOUT ROWID;

CREATE TABLE to_device (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	stream_pos INTEGER NOT NULL,
	sender     TEXT NOT NULL,
	event_type TEXT NOT NULL,
	content    TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, stream_pos)
) WITHOUT ROWID;
CREATE INDEX to_device_stream_idx ON to_device (stream_pos);

CREATE TABLE device_list_changes (
	user_id    TEXT NOT NULL,
	stream_pos INTEGER NOT NULL PRIMARY KEY
);
CREATE INDEX device_list_changes_user_idx ON device_list_changes (user_id, stream_pos);

CREATE TABLE stream_high (pos INTEGER NOT NULL);
INSERT INTO stream_high (pos) SELECT MAX(p) FROM (
	SELECT COALESCE(MAX(stream_pos), 0) AS p FROM events
	UNION ALL SELECT COALESCE(MAX(stream_pos), 0) FROM account_data
	UNION ALL SELECT COALESCE(MAX(stream_pos), 0) FROM receipts);
CREATE TRIGGER events_stream_high AFTER INSERT ON events
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
CREATE TRIGGER account_data_stream_high_ins AFTER INSERT ON account_data
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
CREATE TRIGGER account_data_stream_high_upd AFTER UPDATE OF stream_pos ON account_data
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
CREATE TRIGGER receipts_stream_high_ins AFTER INSERT ON receipts
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
CREATE TRIGGER receipts_stream_high_upd AFTER UPDATE OF stream_pos ON receipts
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
CREATE TRIGGER to_device_stream_high AFTER INSERT ON to_device
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
CREATE TRIGGER device_list_changes_stream_high AFTER INSERT ON device_list_changes
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
`

// schemaV5 adds the media repository's metadata. The files are on disk,
// named by their SHA-256: several items may share one (the index finds
// the items of a file, for deleting it once none is left).
const schemaV5 = `
CREATE TABLE media (
	server_name  TEXT NOT NULL,
	media_id     TEXT NOT NULL,
	content_type TEXT NOT NULL,
	upload_name  TEXT NOT NULL,
	file_size    INTEGER NOT NULL,
	sha256       TEXT NOT NULL,
	uploader     TEXT NOT NULL,
	created_ts   INTEGER NOT NULL,
	PRIMARY KEY (server_name, media_id)
) WITHOUT ROWID;
CREATE INDEX media_sha256_idx ON media (sha256);

CREATE TABLE media_thumbnails (
	server_name  TEXT NOT NULL,
	media_id     TEXT NOT NULL,
	width        INTEGER NOT NULL,
	height       INTEGER NOT NULL,
	method       TEXT NOT NULL,
	content_type TEXT NOT NULL,
	file_size    INTEGER NOT NULL,
	sha256       TEXT NOT NULL,
	created_ts   INTEGER NOT NULL,
	PRIMARY KEY (server_name, media_id, width, height, method)
) WITHOUT ROWID;
CREATE INDEX media_thumbnails_sha256_idx ON media_thumbnails (sha256);
`

// schemaV6 adds the room directory: local room aliases and which rooms
// are published in the public room list.
const schemaV6 = `
CREATE TABLE room_aliases (
	alias      TEXT PRIMARY KEY,
	room_id    TEXT NOT NULL,
	creator    TEXT NOT NULL,
	created_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX room_aliases_room_idx ON room_aliases (room_id);

CREATE TABLE room_visibility (
	room_id    TEXT PRIMARY KEY,
	visibility TEXT NOT NULL
) WITHOUT ROWID;
`

// schemaV7 records the redactions a room applied: event NID → the NID of
// the redaction that redacted it.
const schemaV7 = `
CREATE TABLE redactions (
	redacts_nid   INTEGER PRIMARY KEY,
	redaction_nid INTEGER NOT NULL
);
`

// schemaV8 adds cross-signing keys and the signatures uploaded for keys
// (their changes are device list changes: no stream of their own), and
// server-side key backup: versions per user, numbered from 1 and kept
// (deleted) so that a number is never reused, and the room keys in them.
const schemaV8 = `
CREATE TABLE cross_signing_keys (
	user_id   TEXT NOT NULL,
	key_usage TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	PRIMARY KEY (user_id, key_usage)
) WITHOUT ROWID;

CREATE TABLE cross_signing_signatures (
	target_user_id TEXT NOT NULL,
	target_key_id  TEXT NOT NULL,
	signer_user_id TEXT NOT NULL,
	signer_key_id  TEXT NOT NULL,
	signature      TEXT NOT NULL,
	PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
) WITHOUT ROWID;

CREATE TABLE key_backup_versions (
	user_id   TEXT NOT NULL,
	version   INTEGER NOT NULL,
	algorithm TEXT NOT NULL,
	auth_data TEXT NOT NULL,
	etag      INTEGER NOT NULL,
	deleted   BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, version)
) WITHOUT ROWID;

CREATE TABLE key_backup_sessions (
	user_id             TEXT NOT NULL,
	version             INTEGER NOT NULL,
	room_id             TEXT NOT NULL,
	session_id          TEXT NOT NULL,
	first_message_index INTEGER NOT NULL,
	forwarded_count     INTEGER NOT NULL,
	is_verified         BOOLEAN NOT NULL,
	session_data        TEXT NOT NULL,
	PRIMARY KEY (user_id, version, room_id, session_id)
) WITHOUT ROWID;
`

// schemaV9 adds the relations projection (child event → the event it
// relates to through m.relates_to), filled for the events already stored,
// and finds a room's events by timestamp.
const schemaV9 = `
CREATE TABLE relations (
	child_nid  INTEGER PRIMARY KEY,
	room_nid   INTEGER NOT NULL,
	parent_id  TEXT NOT NULL,
	rel_type   TEXT NOT NULL,
	child_type TEXT NOT NULL,
	stream_pos INTEGER NOT NULL
);
CREATE INDEX relations_parent_idx ON relations (parent_id, stream_pos);
CREATE INDEX relations_room_rel_idx ON relations (room_nid, rel_type, parent_id);
CREATE INDEX events_room_ts_idx ON events (room_nid, origin_server_ts);

INSERT INTO relations (child_nid, room_nid, parent_id, rel_type, child_type, stream_pos)
SELECT e.event_nid, e.room_nid,
	json_extract(e.event_json, '$.content."m.relates_to".event_id'),
	json_extract(e.event_json, '$.content."m.relates_to".rel_type'),
	t.event_type, e.stream_pos
FROM events e JOIN event_types t ON t.event_type_nid = e.event_type_nid
WHERE e.event_json LIKE '%m.relates_to%' AND json_valid(e.event_json)
	AND json_type(e.event_json, '$.content."m.relates_to".event_id') = 'text'
	AND json_type(e.event_json, '$.content."m.relates_to".rel_type') = 'text'
	AND json_extract(e.event_json, '$.content."m.relates_to".event_id') <> ''
	AND json_extract(e.event_json, '$.content."m.relates_to".rel_type') <> '';
`

// schemaV10 caches remote servers' signing keys (every key ever learnt)
// and their newest signed key responses (handed on by the notary API).
const schemaV10 = `
CREATE TABLE server_keys (
	server_name    TEXT NOT NULL,
	key_id         TEXT NOT NULL,
	public_key     BLOB NOT NULL,
	valid_until_ts INTEGER NOT NULL,
	expired_ts     INTEGER NOT NULL,
	PRIMARY KEY (server_name, key_id)
) WITHOUT ROWID;

CREATE TABLE server_key_responses (
	server_name    TEXT PRIMARY KEY,
	valid_until_ts INTEGER NOT NULL,
	response_json  TEXT NOT NULL
) WITHOUT ROWID;
`

// schemaV11 adds the event search projection: the lowercased text the
// search API matches, filled for the events already stored and not
// redacted (lower() here folds ASCII only; Soma lowercases what it writes
// with Unicode rules). The FTS5 index over it is no migration: only one
// of the two drivers has FTS5, so the backend creates it at open time, and
// event_search_fts_state says whether it still matches event_search (a
// driver without FTS5 may have written since).
const schemaV11 = `
CREATE TABLE event_search (
	event_nid  INTEGER PRIMARY KEY,
	room_nid   INTEGER NOT NULL,
	key_id     INTEGER NOT NULL,
	stream_pos INTEGER NOT NULL,
	body       TEXT NOT NULL
);
CREATE INDEX event_search_room_idx ON event_search (room_nid, stream_pos);

CREATE TABLE event_search_fts_state (fresh BOOLEAN NOT NULL);
INSERT INTO event_search_fts_state (fresh) VALUES (FALSE);

INSERT INTO event_search (event_nid, room_nid, key_id, stream_pos, body)
SELECT m.event_nid, m.room_nid, m.key_id, m.stream_pos, lower(json_extract(m.event_json, m.path))
FROM (
	SELECT e.event_nid, e.room_nid, e.stream_pos, e.event_json,
		CASE t.event_type WHEN 'm.room.message' THEN 1 WHEN 'm.room.name' THEN 2 ELSE 3 END AS key_id,
		CASE t.event_type WHEN 'm.room.message' THEN '$.content.body' WHEN 'm.room.name' THEN '$.content.name' ELSE '$.content.topic' END AS path
	FROM events e
	JOIN event_types t ON t.event_type_nid = e.event_type_nid
	LEFT JOIN event_state_keys k ON k.state_key_nid = e.state_key_nid
	WHERE ((t.event_type = 'm.room.message' AND e.state_key_nid = 0)
		OR (t.event_type IN ('m.room.name', 'm.room.topic') AND k.state_key = ''))
		AND NOT EXISTS (SELECT 1 FROM redactions rd WHERE rd.redacts_nid = e.event_nid)
		AND json_valid(e.event_json)
) m
WHERE json_type(m.event_json, m.path) = 'text' AND json_extract(m.event_json, m.path) <> '';
`

// schemaV12 adds pushers: per user, one per (app_id, pushkey), tied to the
// device whose token set it (deleting the device deletes them). user_id
// finds a room's members' pushers; localpart finds a device's.
const schemaV12 = `
CREATE TABLE pushers (
	user_id             TEXT NOT NULL,
	app_id              TEXT NOT NULL,
	pushkey             TEXT NOT NULL,
	localpart           TEXT NOT NULL,
	device_id           TEXT NOT NULL,
	kind                TEXT NOT NULL,
	app_display_name    TEXT NOT NULL,
	device_display_name TEXT NOT NULL,
	profile_tag         TEXT NOT NULL,
	lang                TEXT NOT NULL,
	data                TEXT NOT NULL,
	pushkey_ts          INTEGER NOT NULL,
	PRIMARY KEY (user_id, app_id, pushkey)
) WITHOUT ROWID;
CREATE INDEX pushers_app_pushkey_idx ON pushers (app_id, pushkey);
CREATE INDEX pushers_device_idx ON pushers (localpart, device_id);
`

// schemaV13 records the remote events the room refused, so that they are
// not fetched and checked again. (Outliers, events stored outside the
// timeline, take positions below zero: see the dialect's NextOutlierPos.)
const schemaV13 = `
CREATE TRIGGER events_stream_high_upd AFTER UPDATE OF stream_pos ON events
	BEGIN UPDATE stream_high SET pos = NEW.stream_pos WHERE pos < NEW.stream_pos; END;
CREATE TABLE rejected_events (
	event_id TEXT PRIMARY KEY,
	room_nid INTEGER NOT NULL,
	reason   TEXT NOT NULL
) WITHOUT ROWID;
`

// schemaV14 adds the outbound federation queue: what each remote server
// has yet to be sent, oldest first by seq. A PDU row names its event
// (event_nid, the JSON is the event's); an EDU row (event_nid 0) carries
// its type and content. The partial index finds a destination's EDUs
// without walking its PDUs. AUTOINCREMENT keeps a deleted row's seq from
// being handed out again.
const schemaV14 = `
CREATE TABLE federation_queue (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	destination TEXT NOT NULL,
	event_nid   INTEGER NOT NULL,
	edu_type    TEXT NOT NULL,
	edu_content TEXT NOT NULL
);
CREATE INDEX federation_queue_destination_idx ON federation_queue (destination, seq);
CREATE INDEX federation_queue_edus_idx ON federation_queue (destination, seq) WHERE event_nid = 0;
`
