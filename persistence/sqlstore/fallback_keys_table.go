package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// fallback_keys: each device's fallback key per algorithm, handed out when
// its one-time keys run out (and then marked used, until replaced).

const upsertFallbackKeySQL = `
INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES ($1, $2, $3, $4, $5, FALSE)
ON CONFLICT (user_id, device_id, algorithm) DO UPDATE
SET key_id = excluded.key_id, key_json = excluded.key_json, used = FALSE`

const claimFallbackKeySQL = `
UPDATE fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
RETURNING key_id, key_json`

const selectUnusedFallbackTypesSQL = `
SELECT algorithm FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used ORDER BY algorithm`

const deleteDeviceFallbackKeysSQL = "DELETE FROM fallback_keys WHERE user_id = $1 AND device_id = $2"

type fallbackKeysTable struct {
	upsert, claim, selectUnused, deleteDevice *sql.Stmt
}

func prepareFallbackKeysTable(p *preparer) *fallbackKeysTable {
	return &fallbackKeysTable{
		upsert:       p.prepare(upsertFallbackKeySQL),
		claim:        p.prepare(claimFallbackKeySQL),
		selectUnused: p.prepare(selectUnusedFallbackTypesSQL),
		deleteDevice: p.prepare(deleteDeviceFallbackKeysSQL),
	}
}

func (t *fallbackKeysTable) UpsertFallbackKey(ctx context.Context, tx *sql.Tx, userID, deviceID string, k *persistence.OneTimeKey) error {
	_, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, userID, deviceID, k.Algorithm, k.KeyID, string(k.Key))
	return err
}

// ClaimFallbackKey returns sql.ErrNoRows when the device has none.
func (t *fallbackKeysTable) ClaimFallbackKey(ctx context.Context, tx *sql.Tx, userID, deviceID, algorithm string) (*persistence.OneTimeKey, error) {
	k := &persistence.OneTimeKey{Algorithm: algorithm}
	var key string
	if err := txStmt(ctx, tx, t.claim).QueryRowContext(ctx, userID, deviceID, algorithm).Scan(&k.KeyID, &key); err != nil {
		return nil, err
	}
	k.Key = json.RawMessage(key)
	return k, nil
}

func (t *fallbackKeysTable) SelectUnusedFallbackTypes(ctx context.Context, userID, deviceID string) ([]string, error) {
	rows, err := t.selectUnused.QueryContext(ctx, userID, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var alg string
		if err := rows.Scan(&alg); err != nil {
			return nil, err
		}
		out = append(out, alg)
	}
	return out, rows.Err()
}

func (t *fallbackKeysTable) DeleteDeviceFallbackKeys(ctx context.Context, tx *sql.Tx, userID, deviceID string) error {
	_, err := txStmt(ctx, tx, t.deleteDevice).ExecContext(ctx, userID, deviceID)
	return err
}
