package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// devices: a user's login sessions, each with the hash of its access token
// (unique, indexed: every authenticated request looks it up).

const upsertDeviceSQL = `
INSERT INTO devices (localpart, device_id, display_name, token_hash, created_ts)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (localpart, device_id) DO UPDATE SET
	display_name = excluded.display_name,
	token_hash = excluded.token_hash`

const selectDeviceByTokenHashSQL = `
SELECT localpart, device_id, display_name, created_ts
FROM devices WHERE token_hash = $1`

const selectDevicesByLocalpartSQL = `
SELECT localpart, device_id, display_name, created_ts
FROM devices WHERE localpart = $1 ORDER BY device_id`

const deleteDeviceSQL = "DELETE FROM devices WHERE localpart = $1 AND device_id = $2"

const deleteDevicesByLocalpartSQL = "DELETE FROM devices WHERE localpart = $1"

const deleteDevicesExceptSQL = "DELETE FROM devices WHERE localpart = $1 AND device_id <> $2"

const updateDeviceDisplayNameSQL = "UPDATE devices SET display_name = $3 WHERE localpart = $1 AND device_id = $2"

type devicesTable struct {
	upsertDevice             *sql.Stmt
	selectDeviceByTokenHash  *sql.Stmt
	selectDevicesByLocalpart *sql.Stmt
	deleteDevice             *sql.Stmt
	deleteDevicesByLocalpart *sql.Stmt
	deleteDevicesExcept      *sql.Stmt
	updateDeviceDisplayName  *sql.Stmt
}

func prepareDevicesTable(p *preparer) *devicesTable {
	return &devicesTable{
		upsertDevice:             p.prepare(upsertDeviceSQL),
		selectDeviceByTokenHash:  p.prepare(selectDeviceByTokenHashSQL),
		selectDevicesByLocalpart: p.prepare(selectDevicesByLocalpartSQL),
		deleteDevice:             p.prepare(deleteDeviceSQL),
		deleteDevicesByLocalpart: p.prepare(deleteDevicesByLocalpartSQL),
		deleteDevicesExcept:      p.prepare(deleteDevicesExceptSQL),
		updateDeviceDisplayName:  p.prepare(updateDeviceDisplayNameSQL),
	}
}

// SelectDeviceByTokenHash returns sql.ErrNoRows for an unknown token.
func (t *devicesTable) SelectDeviceByTokenHash(ctx context.Context, tokenHash string) (*persistence.Device, error) {
	var d persistence.Device
	err := t.selectDeviceByTokenHash.QueryRowContext(ctx, tokenHash).Scan(
		&d.Localpart, &d.DeviceID, &d.DisplayName, &d.CreatedTS)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

func (t *devicesTable) SelectDevicesByLocalpart(ctx context.Context, localpart string) ([]persistence.Device, error) {
	rows, err := t.selectDevicesByLocalpart.QueryContext(ctx, localpart)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var devs []persistence.Device
	for rows.Next() {
		var d persistence.Device
		if err := rows.Scan(&d.Localpart, &d.DeviceID, &d.DisplayName, &d.CreatedTS); err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, rows.Err()
}
