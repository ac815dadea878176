package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// server_key_responses: the newest signed /_matrix/key/v2/server response
// of each remote server, kept byte for byte so that this server, as a
// notary, can hand it on with the origin's signature intact. A response
// replaces the stored one only when it is valid at least as long.

const upsertServerKeyResponseSQL = `
INSERT INTO server_key_responses (server_name, valid_until_ts, response_json)
VALUES ($1, $2, $3)
ON CONFLICT (server_name) DO UPDATE
SET valid_until_ts = excluded.valid_until_ts, response_json = excluded.response_json
WHERE excluded.valid_until_ts >= server_key_responses.valid_until_ts`

const selectServerKeyResponseSQL = `
SELECT valid_until_ts, response_json FROM server_key_responses WHERE server_name = $1`

type serverKeyResponsesTable struct {
	upsert, selectOne *sql.Stmt
}

func prepareServerKeyResponsesTable(p *preparer) *serverKeyResponsesTable {
	return &serverKeyResponsesTable{
		upsert:    p.prepare(upsertServerKeyResponseSQL),
		selectOne: p.prepare(selectServerKeyResponseSQL),
	}
}

func (t *serverKeyResponsesTable) UpsertServerKeyResponse(ctx context.Context, tx *sql.Tx, r *persistence.ServerKeyResponse) error {
	_, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, r.ServerName, r.ValidUntilTS, string(r.JSON))
	return err
}

// SelectServerKeyResponse returns sql.ErrNoRows when none is stored.
func (t *serverKeyResponsesTable) SelectServerKeyResponse(ctx context.Context, serverName string) (*persistence.ServerKeyResponse, error) {
	r := persistence.ServerKeyResponse{ServerName: serverName}
	var js string
	if err := t.selectOne.QueryRowContext(ctx, serverName).Scan(&r.ValidUntilTS, &js); err != nil {
		return nil, err
	}
	r.JSON = []byte(js)
	return &r, nil
}
