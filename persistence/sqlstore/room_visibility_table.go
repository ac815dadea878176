package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// room_visibility: whether a room is published in the room directory
// (public) or not (private, or no row). Written by the client API's
// directory handlers and /createRoom.

const upsertRoomVisibilitySQL = `
INSERT INTO room_visibility (room_id, visibility) VALUES ($1, $2)
ON CONFLICT (room_id) DO UPDATE SET visibility = excluded.visibility`

const selectRoomVisibilitySQL = "SELECT visibility FROM room_visibility WHERE room_id = $1"

// Rooms published but not (or no longer) stored are left out by the join.
const selectPublicRoomsSQL = `
SELECT v.room_id, r.room_nid,
	(SELECT COUNT(*) FROM memberships m WHERE m.room_nid = r.room_nid AND m.membership = 'join') AS joined
FROM room_visibility v JOIN rooms r ON r.room_id = v.room_id
WHERE v.visibility = 'public'
ORDER BY joined DESC, v.room_id`

type roomVisibilityTable struct {
	upsertRoomVisibility *sql.Stmt
	selectRoomVisibility *sql.Stmt
	selectPublicRooms    *sql.Stmt
}

func prepareRoomVisibilityTable(p *preparer) *roomVisibilityTable {
	return &roomVisibilityTable{
		upsertRoomVisibility: p.prepare(upsertRoomVisibilitySQL),
		selectRoomVisibility: p.prepare(selectRoomVisibilitySQL),
		selectPublicRooms:    p.prepare(selectPublicRoomsSQL),
	}
}

// SelectRoomVisibility returns sql.ErrNoRows for a room never published.
func (t *roomVisibilityTable) SelectRoomVisibility(ctx context.Context, tx *sql.Tx, roomID string) (string, error) {
	var v string
	err := txStmt(ctx, tx, t.selectRoomVisibility).QueryRowContext(ctx, roomID).Scan(&v)
	return v, err
}

// UpsertRoomVisibility sets a room's visibility.
func (t *roomVisibilityTable) UpsertRoomVisibility(ctx context.Context, tx *sql.Tx, roomID, visibility string) error {
	_, err := txStmt(ctx, tx, t.upsertRoomVisibility).ExecContext(ctx, roomID, visibility)
	return err
}

func (t *roomVisibilityTable) SelectPublicRooms(ctx context.Context) ([]persistence.PublicRoom, error) {
	rows, err := t.selectPublicRooms.QueryContext(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.PublicRoom
	for rows.Next() {
		var p persistence.PublicRoom
		if err := rows.Scan(&p.RoomID, &p.RoomNID, &p.JoinedMembers); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
