package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// to_device: messages waiting for a local device, on the shared stream,
// deleted once the device's sync acknowledges them.

const insertToDeviceSQL = `
INSERT INTO to_device (user_id, device_id, stream_pos, sender, event_type, content)
VALUES ($1, $2, {next_stream_pos}, $3, $4, $5)
RETURNING stream_pos`

const selectToDeviceBetweenSQL = `
SELECT stream_pos, sender, event_type, content FROM to_device
WHERE user_id = $1 AND device_id = $2 AND stream_pos > $3 AND stream_pos <= $4
ORDER BY stream_pos LIMIT $5`

const deleteToDeviceUpToSQL = "DELETE FROM to_device WHERE user_id = $1 AND device_id = $2 AND stream_pos <= $3"

const deleteDeviceToDeviceSQL = "DELETE FROM to_device WHERE user_id = $1 AND device_id = $2"

type toDeviceTable struct {
	insert, selectBetween, deleteUpTo, deleteDevice *sql.Stmt
}

func prepareToDeviceTable(p *preparer) *toDeviceTable {
	return &toDeviceTable{
		insert:        p.prepare(insertToDeviceSQL),
		selectBetween: p.prepare(selectToDeviceBetweenSQL),
		deleteUpTo:    p.prepare(deleteToDeviceUpToSQL),
		deleteDevice:  p.prepare(deleteDeviceToDeviceSQL),
	}
}

func (t *toDeviceTable) InsertToDevice(ctx context.Context, tx *sql.Tx, m *persistence.ToDeviceMessage) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := txStmt(ctx, tx, t.insert).QueryRowContext(ctx, m.UserID, m.DeviceID, m.Sender, m.Type, string(m.Content)).Scan(&pos)
	return pos, err
}

func (t *toDeviceTable) SelectToDeviceBetween(ctx context.Context, userID, deviceID string, from, to persistence.StreamPos, limit int) ([]persistence.ToDeviceMessage, error) {
	rows, err := t.selectBetween.QueryContext(ctx, userID, deviceID, from, to, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.ToDeviceMessage
	for rows.Next() {
		m := persistence.ToDeviceMessage{UserID: userID, DeviceID: deviceID}
		var content string
		if err := rows.Scan(&m.StreamPos, &m.Sender, &m.Type, &content); err != nil {
			return nil, err
		}
		m.Content = json.RawMessage(content)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (t *toDeviceTable) DeleteToDeviceUpTo(ctx context.Context, tx *sql.Tx, userID, deviceID string, pos persistence.StreamPos) error {
	_, err := txStmt(ctx, tx, t.deleteUpTo).ExecContext(ctx, userID, deviceID, pos)
	return err
}

func (t *toDeviceTable) DeleteDeviceToDevice(ctx context.Context, tx *sql.Tx, userID, deviceID string) error {
	_, err := txStmt(ctx, tx, t.deleteDevice).ExecContext(ctx, userID, deviceID)
	return err
}
