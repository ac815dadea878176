package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// room_aliases: local room aliases (#local:server_name) → room, with who
// made the mapping and when. Written by the client API's directory
// handlers, not by room actors: an alias is not room state.

const insertRoomAliasSQL = `
INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (alias) DO NOTHING`

const selectRoomAliasSQL = "SELECT alias, room_id, creator, created_ts FROM room_aliases WHERE alias = $1"

const deleteRoomAliasSQL = "DELETE FROM room_aliases WHERE alias = $1"

const selectRoomAliasesByRoomSQL = `
SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY created_ts, alias`

const updateRoomAliasesRoomSQL = "UPDATE room_aliases SET room_id = $2 WHERE room_id = $1"

type roomAliasesTable struct {
	insertRoomAlias         *sql.Stmt
	selectRoomAlias         *sql.Stmt
	deleteRoomAlias         *sql.Stmt
	selectRoomAliasesByRoom *sql.Stmt
	updateRoomAliasesRoom   *sql.Stmt
}

func prepareRoomAliasesTable(p *preparer) *roomAliasesTable {
	return &roomAliasesTable{
		insertRoomAlias:         p.prepare(insertRoomAliasSQL),
		selectRoomAlias:         p.prepare(selectRoomAliasSQL),
		deleteRoomAlias:         p.prepare(deleteRoomAliasSQL),
		selectRoomAliasesByRoom: p.prepare(selectRoomAliasesByRoomSQL),
		updateRoomAliasesRoom:   p.prepare(updateRoomAliasesRoomSQL),
	}
}

// SelectRoomAlias returns sql.ErrNoRows for an unknown alias.
func (t *roomAliasesTable) SelectRoomAlias(ctx context.Context, alias string) (*persistence.RoomAlias, error) {
	var a persistence.RoomAlias
	if err := t.selectRoomAlias.QueryRowContext(ctx, alias).Scan(&a.Alias, &a.RoomID, &a.Creator, &a.CreatedTS); err != nil {
		return nil, err
	}
	return &a, nil
}

func (t *roomAliasesTable) SelectRoomAliasesByRoom(ctx context.Context, tx *sql.Tx, roomID string) ([]string, error) {
	rows, err := txStmt(ctx, tx, t.selectRoomAliasesByRoom).QueryContext(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpdateRoomAliasesRoom points every alias of oldRoomID to newRoomID.
func (t *roomAliasesTable) UpdateRoomAliasesRoom(ctx context.Context, tx *sql.Tx, oldRoomID, newRoomID string) error {
	_, err := txStmt(ctx, tx, t.updateRoomAliasesRoom).ExecContext(ctx, oldRoomID, newRoomID)
	return err
}
