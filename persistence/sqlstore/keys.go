package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The end-to-end encryption store (persistence.KeyStore).

// PutDeviceKeys implements persistence.KeyStore.
func (s *Store) PutDeviceKeys(ctx context.Context, userID, deviceID string, keys json.RawMessage) (bool, persistence.StreamPos, error) {
	var changed bool
	var pos persistence.StreamPos
	err := s.writeStream(ctx, func(tx *sql.Tx, w *streamWrite) error {
		old, err := s.deviceKeys.SelectDeviceKeys(ctx, tx, userID, deviceID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil && bytes.Equal([]byte(old), keys) {
			return nil
		}
		if err := s.deviceKeys.UpsertDeviceKeys(ctx, tx, userID, deviceID, keys); err != nil {
			return err
		}
		changed = true
		pos, err = w.take(func() (persistence.StreamPos, error) {
			return s.deviceListChanges.InsertDeviceListChange(ctx, tx, userID)
		})
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("persistence.PutDeviceKeys: %w", err)
	}
	return changed, pos, nil
}

// DeviceKeys implements persistence.KeyStore.
func (s *Store) DeviceKeys(ctx context.Context, userID string, deviceIDs []string) (map[string]json.RawMessage, error) {
	all, err := s.deviceKeys.SelectUserDeviceKeys(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("persistence.DeviceKeys: %w", err)
	}
	if len(deviceIDs) == 0 {
		return all, nil
	}
	out := map[string]json.RawMessage{}
	for _, id := range deviceIDs {
		if k, ok := all[id]; ok {
			out[id] = k
		}
	}
	return out, nil
}

// AddOneTimeKeys implements persistence.KeyStore.
func (s *Store) AddOneTimeKeys(ctx context.Context, userID, deviceID string, keys []persistence.OneTimeKey) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for i := range keys {
			if err := s.oneTimeKeys.InsertOneTimeKey(ctx, tx, userID, deviceID, &keys[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence.AddOneTimeKeys: %w", err)
	}
	return nil
}

// OneTimeKeyCounts implements persistence.KeyStore.
func (s *Store) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	out, err := s.oneTimeKeys.CountOneTimeKeys(ctx, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("persistence.OneTimeKeyCounts: %w", err)
	}
	return out, nil
}

// SetFallbackKeys implements persistence.KeyStore.
func (s *Store) SetFallbackKeys(ctx context.Context, userID, deviceID string, keys []persistence.OneTimeKey) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for i := range keys {
			if err := s.fallbackKeys.UpsertFallbackKey(ctx, tx, userID, deviceID, &keys[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence.SetFallbackKeys: %w", err)
	}
	return nil
}

// UnusedFallbackKeyTypes implements persistence.KeyStore.
func (s *Store) UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error) {
	out, err := s.fallbackKeys.SelectUnusedFallbackTypes(ctx, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("persistence.UnusedFallbackKeyTypes: %w", err)
	}
	return out, nil
}

// ClaimKey implements persistence.KeyStore.
func (s *Store) ClaimKey(ctx context.Context, userID, deviceID, algorithm string) (*persistence.OneTimeKey, error) {
	var key *persistence.OneTimeKey
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		key, err = s.oneTimeKeys.ClaimOneTimeKey(ctx, tx, userID, deviceID, algorithm)
		if errors.Is(err, sql.ErrNoRows) {
			key, err = s.fallbackKeys.ClaimFallbackKey(ctx, tx, userID, deviceID, algorithm)
		}
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, persistence.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("persistence.ClaimKey: %w", err)
	}
	return key, nil
}

// RecordDeviceListChange implements persistence.KeyStore.
func (s *Store) RecordDeviceListChange(ctx context.Context, userID string) (persistence.StreamPos, error) {
	pos, err := s.writeStreamRow(ctx, func(tx *sql.Tx) (persistence.StreamPos, error) {
		return s.deviceListChanges.InsertDeviceListChange(ctx, tx, userID)
	})
	if err != nil {
		return 0, fmt.Errorf("persistence.RecordDeviceListChange: %w", err)
	}
	return pos, nil
}

// DeviceListChangesBetween implements persistence.KeyStore.
func (s *Store) DeviceListChangesBetween(ctx context.Context, userID string, from, to persistence.StreamPos) ([]string, error) {
	out, err := s.deviceListChanges.SelectDeviceListChanges(ctx, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("persistence.DeviceListChangesBetween: %w", err)
	}
	return out, nil
}

// LatestDeviceListChange implements persistence.KeyStore.
func (s *Store) LatestDeviceListChange(ctx context.Context, userID string) (persistence.StreamPos, error) {
	pos, err := s.deviceListChanges.SelectLatestDeviceListChange(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("persistence.LatestDeviceListChange: %w", err)
	}
	return pos, nil
}

// SendToDevice implements persistence.KeyStore.
func (s *Store) SendToDevice(ctx context.Context, msgs []persistence.ToDeviceMessage) ([]persistence.StreamPos, error) {
	var positions []persistence.StreamPos
	err := s.writeStream(ctx, func(tx *sql.Tx, w *streamWrite) error {
		positions = positions[:0]
		for i := range msgs {
			if !json.Valid(msgs[i].Content) {
				return fmt.Errorf("message %d: content is not JSON", i)
			}
			p, err := w.take(func() (persistence.StreamPos, error) {
				return s.toDevice.InsertToDevice(ctx, tx, &msgs[i])
			})
			if err != nil {
				return err
			}
			positions = append(positions, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persistence.SendToDevice: %w", err)
	}
	return positions, nil
}

// ToDeviceBetween implements persistence.KeyStore.
func (s *Store) ToDeviceBetween(ctx context.Context, userID, deviceID string, from, to persistence.StreamPos, limit int) ([]persistence.ToDeviceMessage, error) {
	out, err := s.toDevice.SelectToDeviceBetween(ctx, userID, deviceID, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("persistence.ToDeviceBetween: %w", err)
	}
	return out, nil
}

// DeleteToDeviceUpTo implements persistence.KeyStore.
func (s *Store) DeleteToDeviceUpTo(ctx context.Context, userID, deviceID string, pos persistence.StreamPos) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return s.toDevice.DeleteToDeviceUpTo(ctx, tx, userID, deviceID, pos)
	})
	if err != nil {
		return fmt.Errorf("persistence.DeleteToDeviceUpTo: %w", err)
	}
	return nil
}

// DeleteDeviceKeys implements persistence.KeyStore.
func (s *Store) DeleteDeviceKeys(ctx context.Context, userID, deviceID string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, del := range []func(context.Context, *sql.Tx, string, string) error{
			s.deviceKeys.DeleteDeviceKeys, s.oneTimeKeys.DeleteDeviceOneTimeKeys,
			s.fallbackKeys.DeleteDeviceFallbackKeys, s.toDevice.DeleteDeviceToDevice,
		} {
			if err := del(ctx, tx, userID, deviceID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence.DeleteDeviceKeys: %w", err)
	}
	return nil
}

// pruneDeviceKeysSQL are the deletions of PruneDeviceKeys, the identity
// keys last (their count says whether the device list changed).
var pruneDeviceKeysSQL = []string{
	"DELETE FROM one_time_keys WHERE user_id = $1 AND device_id NOT IN (SELECT device_id FROM devices WHERE localpart = $2)",
	"DELETE FROM fallback_keys WHERE user_id = $1 AND device_id NOT IN (SELECT device_id FROM devices WHERE localpart = $2)",
	"DELETE FROM to_device WHERE user_id = $1 AND device_id NOT IN (SELECT device_id FROM devices WHERE localpart = $2)",
	"DELETE FROM device_keys WHERE user_id = $1 AND device_id NOT IN (SELECT device_id FROM devices WHERE localpart = $2)",
}

// PruneDeviceKeys implements persistence.KeyStore.
func (s *Store) PruneDeviceKeys(ctx context.Context, userID, localpart string) (bool, persistence.StreamPos, error) {
	var pruned bool
	var pos persistence.StreamPos
	err := s.writeStream(ctx, func(tx *sql.Tx, w *streamWrite) error {
		var keysGone int64
		for _, q := range pruneDeviceKeysSQL {
			query, err := s.dialect.rewrite(q)
			if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, query, userID, localpart)
			if err != nil {
				return err
			}
			if keysGone, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		if keysGone == 0 {
			return nil
		}
		pruned = true
		var err error
		pos, err = w.take(func() (persistence.StreamPos, error) {
			return s.deviceListChanges.InsertDeviceListChange(ctx, tx, userID)
		})
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("persistence.PruneDeviceKeys: %w", err)
	}
	return pruned, pos, nil
}
