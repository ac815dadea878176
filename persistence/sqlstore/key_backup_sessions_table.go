package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// key_backup_sessions: the room keys stored in a key backup version, one
// per (room, megolm session).

const upsertKeyBackupSessionSQL = `
INSERT INTO key_backup_sessions (user_id, version, room_id, session_id,
	first_message_index, forwarded_count, is_verified, session_data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
	first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,
	is_verified = excluded.is_verified, session_data = excluded.session_data`

const keyBackupSessionColumns = "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"

const selectKeyBackupSessionSQL = "SELECT " + keyBackupSessionColumns + ` FROM key_backup_sessions
WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`

const selectKeyBackupRoomSessionsSQL = "SELECT " + keyBackupSessionColumns + ` FROM key_backup_sessions
WHERE user_id = $1 AND version = $2 AND room_id = $3 ORDER BY session_id`

const selectKeyBackupSessionsSQL = "SELECT " + keyBackupSessionColumns + ` FROM key_backup_sessions
WHERE user_id = $1 AND version = $2 ORDER BY room_id, session_id`

const countKeyBackupSessionsSQL = "SELECT COUNT(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2"

const deleteKeyBackupSessionSQL = `
DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`

const deleteKeyBackupRoomSessionsSQL = "DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND room_id = $3"

const deleteKeyBackupSessionsSQL = "DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2"

type keyBackupSessionsTable struct {
	upsert, selectOne, selectRoom, selectAll, count, deleteOne, deleteRoom, deleteAll *sql.Stmt
}

func prepareKeyBackupSessionsTable(p *preparer) *keyBackupSessionsTable {
	return &keyBackupSessionsTable{
		upsert:     p.prepare(upsertKeyBackupSessionSQL),
		selectOne:  p.prepare(selectKeyBackupSessionSQL),
		selectRoom: p.prepare(selectKeyBackupRoomSessionsSQL),
		selectAll:  p.prepare(selectKeyBackupSessionsSQL),
		count:      p.prepare(countKeyBackupSessionsSQL),
		deleteOne:  p.prepare(deleteKeyBackupSessionSQL),
		deleteRoom: p.prepare(deleteKeyBackupRoomSessionsSQL),
		deleteAll:  p.prepare(deleteKeyBackupSessionsSQL),
	}
}

func (t *keyBackupSessionsTable) UpsertKeyBackupSession(ctx context.Context, tx *sql.Tx, userID string, version int64, k *persistence.KeyBackupSession) error {
	_, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, userID, version, k.RoomID, k.SessionID,
		k.FirstMessageIndex, k.ForwardedCount, k.IsVerified, string(k.SessionData))
	return err
}

// SelectKeyBackupSessions selects as persistence.KeyBackupStore's
// KeyBackupSessions does.
func (t *keyBackupSessionsTable) SelectKeyBackupSessions(ctx context.Context, tx *sql.Tx, userID string, version int64, roomID, sessionID string) ([]persistence.KeyBackupSession, error) {
	var rows *sql.Rows
	var err error
	switch {
	case roomID == "":
		rows, err = txStmt(ctx, tx, t.selectAll).QueryContext(ctx, userID, version)
	case sessionID == "":
		rows, err = txStmt(ctx, tx, t.selectRoom).QueryContext(ctx, userID, version, roomID)
	default:
		rows, err = txStmt(ctx, tx, t.selectOne).QueryContext(ctx, userID, version, roomID, sessionID)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.KeyBackupSession
	for rows.Next() {
		var k persistence.KeyBackupSession
		var data string
		if err := rows.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &data); err != nil {
			return nil, err
		}
		k.SessionData = json.RawMessage(data)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (t *keyBackupSessionsTable) CountKeyBackupSessions(ctx context.Context, tx *sql.Tx, userID string, version int64) (int, error) {
	var n int
	err := txStmt(ctx, tx, t.count).QueryRowContext(ctx, userID, version).Scan(&n)
	return n, err
}

// DeleteKeyBackupSessions deletes as SelectKeyBackupSessions selects and
// reports whether it deleted any.
func (t *keyBackupSessionsTable) DeleteKeyBackupSessions(ctx context.Context, tx *sql.Tx, userID string, version int64, roomID, sessionID string) (bool, error) {
	switch {
	case roomID == "":
		return execChanged(ctx, txStmt(ctx, tx, t.deleteAll), userID, version)
	case sessionID == "":
		return execChanged(ctx, txStmt(ctx, tx, t.deleteRoom), userID, version, roomID)
	default:
		return execChanged(ctx, txStmt(ctx, tx, t.deleteOne), userID, version, roomID, sessionID)
	}
}
