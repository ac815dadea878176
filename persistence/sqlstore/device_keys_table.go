package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
)

// device_keys: each local device's identity keys, as its client signed them.

const selectDeviceKeySQL = "SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2"

const upsertDeviceKeysSQL = `
INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`

const selectUserDeviceKeysSQL = "SELECT device_id, key_json FROM device_keys WHERE user_id = $1"

const deleteDeviceKeysSQL = "DELETE FROM device_keys WHERE user_id = $1 AND device_id = $2"

type deviceKeysTable struct {
	selectOne, upsert, selectUser, delete *sql.Stmt
}

func prepareDeviceKeysTable(p *preparer) *deviceKeysTable {
	return &deviceKeysTable{
		selectOne:  p.prepare(selectDeviceKeySQL),
		upsert:     p.prepare(upsertDeviceKeysSQL),
		selectUser: p.prepare(selectUserDeviceKeysSQL),
		delete:     p.prepare(deleteDeviceKeysSQL),
	}
}

// SelectDeviceKeys returns sql.ErrNoRows when the device has none.
func (t *deviceKeysTable) SelectDeviceKeys(ctx context.Context, tx *sql.Tx, userID, deviceID string) (string, error) {
	var k string
	err := txStmt(ctx, tx, t.selectOne).QueryRowContext(ctx, userID, deviceID).Scan(&k)
	return k, err
}

func (t *deviceKeysTable) UpsertDeviceKeys(ctx context.Context, tx *sql.Tx, userID, deviceID string, keys json.RawMessage) error {
	_, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, userID, deviceID, string(keys))
	return err
}

func (t *deviceKeysTable) SelectUserDeviceKeys(ctx context.Context, userID string) (map[string]json.RawMessage, error) {
	rows, err := t.selectUser.QueryContext(ctx, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var id, k string
		if err := rows.Scan(&id, &k); err != nil {
			return nil, err
		}
		out[id] = json.RawMessage(k)
	}
	return out, rows.Err()
}

func (t *deviceKeysTable) DeleteDeviceKeys(ctx context.Context, tx *sql.Tx, userID, deviceID string) error {
	_, err := txStmt(ctx, tx, t.delete).ExecContext(ctx, userID, deviceID)
	return err
}
