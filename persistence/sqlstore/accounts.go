package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The AccountStore: accounts, devices and profiles, independent of rooms.

// CreateAccount implements persistence.AccountStore.
func (s *Store) CreateAccount(ctx context.Context, acc persistence.Account) error {
	if acc.Localpart == "" {
		return fmt.Errorf("persistence.CreateAccount: empty localpart")
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		created, err := s.accounts.InsertAccount(ctx, tx, acc)
		if err != nil {
			return err
		}
		if !created {
			return persistence.ErrUserExists
		}
		return s.profiles.InsertProfile(ctx, tx, acc.Localpart)
	})
	if err != nil {
		return fmt.Errorf("persistence.CreateAccount: %w", err)
	}
	return nil
}

// GetAccount implements persistence.AccountStore.
func (s *Store) GetAccount(ctx context.Context, localpart string) (*persistence.Account, error) {
	acc, err := s.accounts.SelectAccount(ctx, localpart)
	if err != nil {
		return nil, fmt.Errorf("persistence.GetAccount: %w", notFoundIfNoRows(err))
	}
	return acc, nil
}

// SetPasswordHash implements persistence.AccountStore.
func (s *Store) SetPasswordHash(ctx context.Context, localpart, hash string) error {
	return s.updateOne(ctx, "persistence.SetPasswordHash", s.accounts.updatePasswordHash, localpart, hash)
}

// UpsertDevice implements persistence.AccountStore.
func (s *Store) UpsertDevice(ctx context.Context, dev persistence.Device, tokenHash string) error {
	if dev.Localpart == "" || dev.DeviceID == "" || tokenHash == "" {
		return fmt.Errorf("persistence.UpsertDevice: localpart, device ID and token hash are required")
	}
	_, err := s.write(ctx, s.devices.upsertDevice, dev.Localpart, dev.DeviceID, dev.DisplayName, tokenHash, dev.CreatedTS)
	if err != nil {
		return fmt.Errorf("persistence.UpsertDevice: %w", err)
	}
	return nil
}

// DeviceByTokenHash implements persistence.AccountStore.
func (s *Store) DeviceByTokenHash(ctx context.Context, tokenHash string) (*persistence.Device, error) {
	dev, err := s.devices.SelectDeviceByTokenHash(ctx, tokenHash)
	if err != nil {
		return nil, fmt.Errorf("persistence.DeviceByTokenHash: %w", notFoundIfNoRows(err))
	}
	return dev, nil
}

// ListDevices implements persistence.AccountStore.
func (s *Store) ListDevices(ctx context.Context, localpart string) ([]persistence.Device, error) {
	devs, err := s.devices.SelectDevicesByLocalpart(ctx, localpart)
	if err != nil {
		return nil, fmt.Errorf("persistence.ListDevices: %w", err)
	}
	return devs, nil
}

// DeleteDevice implements persistence.AccountStore.
func (s *Store) DeleteDevice(ctx context.Context, localpart, deviceID string) error {
	err := s.deleteDevices(ctx, localpart, func(tx *sql.Tx) error {
		n, err := execRows(ctx, tx, s.devices.deleteDevice, localpart, deviceID)
		if err == nil && n == 0 {
			return persistence.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("persistence.DeleteDevice: %w", err)
	}
	return nil
}

// DeleteAllDevices implements persistence.AccountStore.
func (s *Store) DeleteAllDevices(ctx context.Context, localpart string) error {
	err := s.deleteDevices(ctx, localpart, func(tx *sql.Tx) error {
		_, err := execRows(ctx, tx, s.devices.deleteDevicesByLocalpart, localpart)
		return err
	})
	if err != nil {
		return fmt.Errorf("persistence.DeleteAllDevices: %w", err)
	}
	return nil
}

// DeleteDevices implements persistence.AccountStore.
func (s *Store) DeleteDevices(ctx context.Context, localpart string, deviceIDs []string) error {
	if len(deviceIDs) == 0 {
		return nil
	}
	err := s.deleteDevices(ctx, localpart, func(tx *sql.Tx) error {
		for _, id := range deviceIDs {
			if _, err := execRows(ctx, tx, s.devices.deleteDevice, localpart, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence.DeleteDevices: %w", err)
	}
	return nil
}

// DeleteDevicesExcept implements persistence.AccountStore.
func (s *Store) DeleteDevicesExcept(ctx context.Context, localpart, keepDeviceID string) error {
	err := s.deleteDevices(ctx, localpart, func(tx *sql.Tx) error {
		_, err := execRows(ctx, tx, s.devices.deleteDevicesExcept, localpart, keepDeviceID)
		return err
	})
	if err != nil {
		return fmt.Errorf("persistence.DeleteDevicesExcept: %w", err)
	}
	return nil
}

// deleteDevices runs del, which deletes some of the user's devices, and
// deletes the pushers those devices set, in one transaction: a pusher
// lives exactly as long as the device (and access token) that set it.
func (s *Store) deleteDevices(ctx context.Context, localpart string, del func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := del(tx); err != nil {
			return err
		}
		return s.pushers.DeleteOrphanPushers(ctx, tx, localpart)
	})
}

// execRows runs st in tx and returns how many rows it changed.
func execRows(ctx context.Context, tx *sql.Tx, st *sql.Stmt, args ...any) (int64, error) {
	res, err := txStmt(ctx, tx, st).ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// SetDeviceDisplayName implements persistence.AccountStore.
func (s *Store) SetDeviceDisplayName(ctx context.Context, localpart, deviceID, name string) error {
	return s.updateOne(ctx, "persistence.SetDeviceDisplayName", s.devices.updateDeviceDisplayName, localpart, deviceID, name)
}

// GetProfile implements persistence.AccountStore.
func (s *Store) GetProfile(ctx context.Context, localpart string) (persistence.Profile, error) {
	p, err := s.profiles.SelectProfile(ctx, localpart)
	if err != nil {
		return persistence.Profile{}, fmt.Errorf("persistence.GetProfile: %w", notFoundIfNoRows(err))
	}
	return p, nil
}

// SetDisplayName implements persistence.AccountStore.
func (s *Store) SetDisplayName(ctx context.Context, localpart, name string) error {
	return s.updateOne(ctx, "persistence.SetDisplayName", s.profiles.updateDisplayName, localpart, name)
}

// SetAvatarURL implements persistence.AccountStore.
func (s *Store) SetAvatarURL(ctx context.Context, localpart, url string) error {
	return s.updateOne(ctx, "persistence.SetAvatarURL", s.profiles.updateAvatarURL, localpart, url)
}

// updateOne runs a statement that changes one row: ErrNotFound when it
// changes none.
func (s *Store) updateOne(ctx context.Context, op string, st *sql.Stmt, args ...any) error {
	n, err := s.write(ctx, st, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, persistence.ErrNotFound)
	}
	return nil
}
