package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The AccountAdmin: what operators do to accounts (list, deactivate). The
// statements are prepared per call: these are rare operator requests.

const selectAccountsPageSQL = `
SELECT localpart, password_hash, is_admin, deactivated, created_ts
FROM accounts WHERE localpart > $1 ORDER BY localpart LIMIT $2`

const deactivateAccountSQL = "UPDATE accounts SET deactivated = $2 WHERE localpart = $1"

const deleteAccountDevicesSQL = "DELETE FROM devices WHERE localpart = $1"

// ListAccounts implements persistence.AccountAdmin.
func (s *Store) ListAccounts(ctx context.Context, after string, limit int) ([]persistence.Account, error) {
	if limit < 1 {
		return nil, nil
	}
	q, err := s.dialect.rewrite(selectAccountsPageSQL)
	if err != nil {
		return nil, fmt.Errorf("persistence.ListAccounts: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, q, after, limit)
	if err != nil {
		return nil, fmt.Errorf("persistence.ListAccounts: %w", err)
	}
	defer rows.Close()
	var out []persistence.Account
	for rows.Next() {
		var a persistence.Account
		if err := rows.Scan(&a.Localpart, &a.PasswordHash, &a.IsAdmin, &a.Deactivated, &a.CreatedTS); err != nil {
			return nil, fmt.Errorf("persistence.ListAccounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("persistence.ListAccounts: %w", err)
	}
	return out, nil
}

// DeactivateAccount implements persistence.AccountAdmin.
func (s *Store) DeactivateAccount(ctx context.Context, localpart string) error {
	deactivate, err := s.dialect.rewrite(deactivateAccountSQL)
	if err != nil {
		return fmt.Errorf("persistence.DeactivateAccount: %w", err)
	}
	deleteDevices, err := s.dialect.rewrite(deleteAccountDevicesSQL)
	if err != nil {
		return fmt.Errorf("persistence.DeactivateAccount: %w", err)
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, deactivate, localpart, true)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return persistence.ErrNotFound
		}
		if _, err = tx.ExecContext(ctx, deleteDevices, localpart); err != nil {
			return err
		}
		return s.pushers.DeleteOrphanPushers(ctx, tx, localpart)
	})
	if err != nil {
		return fmt.Errorf("persistence.DeactivateAccount: %w", err)
	}
	return nil
}
