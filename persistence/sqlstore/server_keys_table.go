package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// server_keys: every signing key of a remote server the keyring has
// learnt, current (valid_until_ts) or old (expired_ts). Rows are never
// deleted: an old key still verifies what it signed before it expired.

const upsertServerKeySQL = `
INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (server_name, key_id) DO UPDATE
SET public_key = excluded.public_key, valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts`

const selectServerKeySQL = `
SELECT public_key, valid_until_ts, expired_ts FROM server_keys WHERE server_name = $1 AND key_id = $2`

type serverKeysTable struct {
	upsert, selectOne *sql.Stmt
}

func prepareServerKeysTable(p *preparer) *serverKeysTable {
	return &serverKeysTable{
		upsert:    p.prepare(upsertServerKeySQL),
		selectOne: p.prepare(selectServerKeySQL),
	}
}

func (t *serverKeysTable) UpsertServerKey(ctx context.Context, tx *sql.Tx, k *persistence.ServerKey) error {
	_, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, k.ServerName, k.KeyID, k.PublicKey, k.ValidUntilTS, k.ExpiredTS)
	return err
}

// SelectServerKey returns sql.ErrNoRows for an unknown key.
func (t *serverKeysTable) SelectServerKey(ctx context.Context, id persistence.ServerKeyID) (*persistence.ServerKey, error) {
	k := persistence.ServerKey{ServerName: id.ServerName, KeyID: id.KeyID}
	if err := t.selectOne.QueryRowContext(ctx, id.ServerName, id.KeyID).Scan(&k.PublicKey, &k.ValidUntilTS, &k.ExpiredTS); err != nil {
		return nil, err
	}
	return &k, nil
}
