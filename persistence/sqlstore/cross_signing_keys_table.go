package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// cross_signing_keys: each local user's master, self-signing and
// user-signing key, one of each usage, as uploaded.

const upsertCrossSigningKeySQL = `
INSERT INTO cross_signing_keys (user_id, key_usage, key_id, key_json) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, key_usage) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json`

const selectCrossSigningKeysSQL = "SELECT key_usage, key_id, key_json FROM cross_signing_keys WHERE user_id = $1"

type crossSigningKeysTable struct {
	upsert, selectUser *sql.Stmt
}

func prepareCrossSigningKeysTable(p *preparer) *crossSigningKeysTable {
	return &crossSigningKeysTable{
		upsert:     p.prepare(upsertCrossSigningKeySQL),
		selectUser: p.prepare(selectCrossSigningKeysSQL),
	}
}

func (t *crossSigningKeysTable) UpsertCrossSigningKey(ctx context.Context, tx *sql.Tx, userID string, k *persistence.CrossSigningKey) error {
	_, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, userID, k.Usage, k.KeyID, string(k.Key))
	return err
}

func (t *crossSigningKeysTable) SelectCrossSigningKeys(ctx context.Context, userID string) (map[string]persistence.CrossSigningKey, error) {
	rows, err := t.selectUser.QueryContext(ctx, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]persistence.CrossSigningKey{}
	for rows.Next() {
		var k persistence.CrossSigningKey
		var j string
		if err := rows.Scan(&k.Usage, &k.KeyID, &j); err != nil {
			return nil, err
		}
		k.Key = json.RawMessage(j)
		out[k.Usage] = k
	}
	return out, rows.Err()
}
