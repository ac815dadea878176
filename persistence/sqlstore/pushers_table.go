package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// pushers: where each user's notifications go, one row per (user, app_id,
// pushkey), tied to the device that set it. The push sender reads a room's
// joined members' pushers in one query per room advance.

const pusherColumns = `p.user_id, p.localpart, p.device_id, p.kind, p.app_id, p.pushkey,
	p.app_display_name, p.device_display_name, p.profile_tag, p.lang, p.data, p.pushkey_ts`

// upsertPusherSQL writes the pusher only while its device exists, so that
// a pusher set with a token being logged out cannot outlive the device.
const upsertPusherSQL = `
INSERT INTO pushers (user_id, localpart, device_id, kind, app_id, pushkey,
	app_display_name, device_display_name, profile_tag, lang, data, pushkey_ts)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
WHERE EXISTS (SELECT 1 FROM devices WHERE localpart = $2 AND device_id = $3)
ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET
	localpart = excluded.localpart, device_id = excluded.device_id, kind = excluded.kind,
	app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name,
	profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data,
	pushkey_ts = excluded.pushkey_ts`

const deleteOtherUsersPushersSQL = "DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3"

const deletePusherSQL = "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3"

// deleteOrphanPushersSQL removes the pushers of a user's devices that no
// longer exist; every deletion of devices runs it in its transaction.
const deleteOrphanPushersSQL = `
DELETE FROM pushers WHERE localpart = $1
	AND device_id NOT IN (SELECT device_id FROM devices WHERE localpart = $1)`

const selectPushersOfUserSQL = "SELECT " + pusherColumns + ` FROM pushers p
WHERE p.user_id = $1 ORDER BY p.app_id, p.pushkey`

// selectPushersOfJoinedMembersSQL is a join, not a semi-join over the
// room's members: the database may walk the (few) pushers and probe each
// user's membership by the (room_nid, user_id) key, so that a room of
// 10^5 members does not cost a scan of its members per commit.
const selectPushersOfJoinedMembersSQL = "SELECT " + pusherColumns + ` FROM pushers p
JOIN memberships m ON m.room_nid = $1 AND m.user_id = p.user_id
WHERE m.membership = 'join'
ORDER BY p.user_id, p.app_id, p.pushkey`

type pushersTable struct {
	upsert, deleteOthers, deleteOne, deleteOrphans *sql.Stmt
	selectOfUser, selectOfJoinedMembers            *sql.Stmt
}

func preparePushersTable(p *preparer) *pushersTable {
	return &pushersTable{
		upsert:                p.prepare(upsertPusherSQL),
		deleteOthers:          p.prepare(deleteOtherUsersPushersSQL),
		deleteOne:             p.prepare(deletePusherSQL),
		deleteOrphans:         p.prepare(deleteOrphanPushersSQL),
		selectOfUser:          p.prepare(selectPushersOfUserSQL),
		selectOfJoinedMembers: p.prepare(selectPushersOfJoinedMembersSQL),
	}
}

// UpsertPusher reports whether the pusher was written (its device exists).
func (t *pushersTable) UpsertPusher(ctx context.Context, tx *sql.Tx, p *persistence.Pusher) (bool, error) {
	res, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, p.UserID, p.Localpart, p.DeviceID, p.Kind, p.AppID, p.Pushkey,
		p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang, string(p.Data), p.PushkeyTS)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (t *pushersTable) DeleteOtherUsersPushers(ctx context.Context, tx *sql.Tx, appID, pushkey, userID string) error {
	_, err := txStmt(ctx, tx, t.deleteOthers).ExecContext(ctx, appID, pushkey, userID)
	return err
}

// DeleteOrphanPushers deletes the pushers of the user's deleted devices.
func (t *pushersTable) DeleteOrphanPushers(ctx context.Context, tx *sql.Tx, localpart string) error {
	_, err := txStmt(ctx, tx, t.deleteOrphans).ExecContext(ctx, localpart)
	return err
}

func (t *pushersTable) SelectPushers(ctx context.Context, st *sql.Stmt, arg any) ([]persistence.Pusher, error) {
	rows, err := st.QueryContext(ctx, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.Pusher
	for rows.Next() {
		var p persistence.Pusher
		var data string
		if err := rows.Scan(&p.UserID, &p.Localpart, &p.DeviceID, &p.Kind, &p.AppID, &p.Pushkey,
			&p.AppDisplayName, &p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.PushkeyTS); err != nil {
			return nil, err
		}
		p.Data = []byte(data)
		out = append(out, p)
	}
	return out, rows.Err()
}
