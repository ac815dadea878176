package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// memberships: a projection of each user's current membership of each
// room, with the event and stream position that set it; written by the
// commit of the membership event. Forgetting a room survives until the
// membership changes.

const upsertMembershipSQL = `
INSERT INTO memberships (room_nid, user_id, membership, event_nid, stream_pos, forgotten)
VALUES ($1, $2, $3, $4, $5, FALSE)
ON CONFLICT (room_nid, user_id) DO UPDATE SET
	membership = excluded.membership,
	event_nid = excluded.event_nid,
	stream_pos = excluded.stream_pos,
	forgotten = CASE WHEN memberships.membership = excluded.membership THEN memberships.forgotten ELSE FALSE END`

const membershipColumns = `r.room_id, m.room_nid, m.user_id, m.membership, e.event_id, m.event_nid, m.stream_pos, m.forgotten
FROM memberships m
LEFT JOIN rooms r ON r.room_nid = m.room_nid
LEFT JOIN events e ON e.event_nid = m.event_nid`

const selectMembershipsByUserSQL = "SELECT " + membershipColumns + `
WHERE m.user_id = $1 ORDER BY m.room_nid`

const selectMembershipSQL = "SELECT " + membershipColumns + `
WHERE m.room_nid = $1 AND m.user_id = $2`

const countJoinedMembersSQL = "SELECT COUNT(*) FROM memberships WHERE room_nid = $1 AND membership = 'join'"

// selectJoinedLikeSQL finds the joined users whose ID ends with a
// pattern: the candidates of ServerJoined, checked exactly by the caller
// (SQLite's LIKE ignores ASCII case; ":1" also ends "@u:127.0.0.1:1").
const selectJoinedLikeSQL = `SELECT user_id FROM memberships
WHERE room_nid = $1 AND membership = 'join' AND user_id LIKE $2 ESCAPE '\'`

const selectRoomMembershipsSQL = "SELECT " + membershipColumns + `
WHERE m.room_nid = $1 ORDER BY m.user_id`

const updateForgottenSQL = "UPDATE memberships SET forgotten = TRUE WHERE room_nid = $1 AND user_id = $2"

// selectJoinedServersOfRoomSQL: the servers of a room's joined members.
const selectJoinedServersOfRoomSQL = `
SELECT DISTINCT SERVER_OF(m.user_id) FROM memberships m
JOIN rooms r ON r.room_nid = m.room_nid
WHERE r.room_id = $1 AND m.membership = 'join'`

// selectServersSharingRoomsSQL: the servers of the joined members of the
// rooms the user is joined to.
const selectServersSharingRoomsSQL = `
SELECT DISTINCT SERVER_OF(theirs.user_id) FROM memberships mine
JOIN memberships theirs ON theirs.room_nid = mine.room_nid
WHERE mine.user_id = $1 AND mine.membership = 'join' AND theirs.membership = 'join'`

type membershipsTable struct {
	selectJoinedServersOfRoom *sql.Stmt
	selectServersSharingRooms *sql.Stmt
	upsertMembership          *sql.Stmt
	selectMembershipsByUser   *sql.Stmt
	selectMembership          *sql.Stmt
	updateForgotten           *sql.Stmt
	selectRoomMemberships     *sql.Stmt
	countJoined               *sql.Stmt
	selectJoinedLike          *sql.Stmt
}

func prepareMembershipsTable(p *preparer) *membershipsTable {
	return &membershipsTable{
		selectJoinedServersOfRoom: p.prepare(selectJoinedServersOfRoomSQL),
		selectServersSharingRooms: p.prepare(selectServersSharingRoomsSQL),
		upsertMembership:          p.prepare(upsertMembershipSQL),
		selectMembershipsByUser:   p.prepare(selectMembershipsByUserSQL),
		selectMembership:          p.prepare(selectMembershipSQL),
		updateForgotten:           p.prepare(updateForgottenSQL),
		selectRoomMemberships:     p.prepare(selectRoomMembershipsSQL),
		countJoined:               p.prepare(countJoinedMembersSQL),
		selectJoinedLike:          p.prepare(selectJoinedLikeSQL),
	}
}

func (t *membershipsTable) UpsertMembership(ctx context.Context, tx *sql.Tx, room persistence.RoomNID, userID, membership string, ev persistence.EventNID, pos persistence.StreamPos) error {
	_, err := txStmt(ctx, tx, t.upsertMembership).ExecContext(ctx, room, userID, membership, ev, pos)
	return err
}

func (t *membershipsTable) SelectMembershipsByUser(ctx context.Context, userID string) ([]persistence.Membership, error) {
	return queryMemberships(ctx, t.selectMembershipsByUser, userID)
}

// SelectRoomMemberships returns every membership row of a room.
func (t *membershipsTable) SelectRoomMemberships(ctx context.Context, room persistence.RoomNID) ([]persistence.Membership, error) {
	return queryMemberships(ctx, t.selectRoomMemberships, room)
}

func queryMemberships(ctx context.Context, st *sql.Stmt, args ...any) ([]persistence.Membership, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.Membership
	for rows.Next() {
		m, err := scanMembership(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, rows.Err()
}

// SelectMembership returns sql.ErrNoRows when the user has no membership.
func (t *membershipsTable) SelectMembership(ctx context.Context, room persistence.RoomNID, userID string) (*persistence.Membership, error) {
	return scanMembership(t.selectMembership.QueryRowContext(ctx, room, userID))
}

func scanMembership(row rowScanner) (*persistence.Membership, error) {
	var m persistence.Membership
	var roomID, eventID sql.NullString
	if err := row.Scan(&roomID, &m.RoomNID, &m.UserID, &m.Membership, &eventID, &m.EventNID, &m.StreamPos, &m.Forgotten); err != nil {
		return nil, err
	}
	if !roomID.Valid || !eventID.Valid {
		return nil, fmt.Errorf("membership of %s in room %d: its room or event %d is not stored", m.UserID, m.RoomNID, m.EventNID)
	}
	m.RoomID, m.EventID = roomID.String, eventID.String
	return &m, nil
}

// SelectServerJoined says whether a joined user's ID is exactly
// "@localpart:serverName".
func (t *membershipsTable) SelectServerJoined(ctx context.Context, room persistence.RoomNID, serverName string) (bool, error) {
	escaped := strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(serverName)
	rows, err := t.selectJoinedLike.QueryContext(ctx, room, "%:"+escaped)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var user string
		if err := rows.Scan(&user); err != nil {
			return false, err
		}
		if _, domain, ok := strings.Cut(user, ":"); ok && domain == serverName {
			return true, nil
		}
	}
	return false, rows.Err()
}

// SelectJoinedServersOfRoom returns the room's joined servers, sorted.
func (t *membershipsTable) SelectJoinedServersOfRoom(ctx context.Context, roomID string) ([]string, error) {
	return queryServers(ctx, t.selectJoinedServersOfRoom, roomID)
}

// SelectServersSharingRooms returns the servers sharing a joined room with
// the user, sorted.
func (t *membershipsTable) SelectServersSharingRooms(ctx context.Context, userID string) ([]string, error) {
	return queryServers(ctx, t.selectServersSharingRooms, userID)
}

func queryServers(ctx context.Context, st *sql.Stmt, arg any) ([]string, error) {
	rows, err := st.QueryContext(ctx, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}
