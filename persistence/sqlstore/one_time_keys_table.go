package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// one_time_keys: devices' unclaimed one-time keys; a claim deletes one.

const insertOneTimeKeySQL = `
INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING`

const countOneTimeKeysSQL = `
SELECT algorithm, COUNT(*) FROM one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`

// claimOneTimeKeySQL deletes the device's first key of the algorithm; on
// PostgreSQL, concurrent claims skip each other's row.
const claimOneTimeKeySQL = `
DELETE FROM one_time_keys WHERE (user_id, device_id, algorithm, key_id) IN (
	SELECT user_id, device_id, algorithm, key_id FROM one_time_keys
	WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
	ORDER BY key_id LIMIT 1 {skip_locked}
) RETURNING key_id, key_json`

const deleteDeviceOneTimeKeysSQL = "DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2"

type oneTimeKeysTable struct {
	insert, count, claim, deleteDevice *sql.Stmt
}

func prepareOneTimeKeysTable(p *preparer) *oneTimeKeysTable {
	return &oneTimeKeysTable{
		insert:       p.prepare(insertOneTimeKeySQL),
		count:        p.prepare(countOneTimeKeysSQL),
		claim:        p.prepare(claimOneTimeKeySQL),
		deleteDevice: p.prepare(deleteDeviceOneTimeKeysSQL),
	}
}

func (t *oneTimeKeysTable) InsertOneTimeKey(ctx context.Context, tx *sql.Tx, userID, deviceID string, k *persistence.OneTimeKey) error {
	_, err := txStmt(ctx, tx, t.insert).ExecContext(ctx, userID, deviceID, k.Algorithm, k.KeyID, string(k.Key))
	return err
}

func (t *oneTimeKeysTable) CountOneTimeKeys(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	rows, err := t.count.QueryContext(ctx, userID, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, err
		}
		out[alg] = n
	}
	return out, rows.Err()
}

// ClaimOneTimeKey returns sql.ErrNoRows when the device has no such key.
func (t *oneTimeKeysTable) ClaimOneTimeKey(ctx context.Context, tx *sql.Tx, userID, deviceID, algorithm string) (*persistence.OneTimeKey, error) {
	k := &persistence.OneTimeKey{Algorithm: algorithm}
	var key string
	if err := txStmt(ctx, tx, t.claim).QueryRowContext(ctx, userID, deviceID, algorithm).Scan(&k.KeyID, &key); err != nil {
		return nil, err
	}
	k.Key = json.RawMessage(key)
	return k, nil
}

func (t *oneTimeKeysTable) DeleteDeviceOneTimeKeys(ctx context.Context, tx *sql.Tx, userID, deviceID string) error {
	_, err := txStmt(ctx, tx, t.deleteDevice).ExecContext(ctx, userID, deviceID)
	return err
}
