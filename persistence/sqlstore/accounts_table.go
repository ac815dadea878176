package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// accounts: one row per local user.

const insertAccountSQL = `
INSERT INTO accounts (localpart, password_hash, is_admin, deactivated, created_ts)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (localpart) DO NOTHING`

const selectAccountSQL = `
SELECT localpart, password_hash, is_admin, deactivated, created_ts
FROM accounts WHERE localpart = $1`

const updatePasswordHashSQL = "UPDATE accounts SET password_hash = $2 WHERE localpart = $1"

type accountsTable struct {
	insertAccount      *sql.Stmt
	selectAccount      *sql.Stmt
	updatePasswordHash *sql.Stmt
}

func prepareAccountsTable(p *preparer) *accountsTable {
	return &accountsTable{
		insertAccount:      p.prepare(insertAccountSQL),
		selectAccount:      p.prepare(selectAccountSQL),
		updatePasswordHash: p.prepare(updatePasswordHashSQL),
	}
}

// InsertAccount reports false when the localpart is taken.
func (t *accountsTable) InsertAccount(ctx context.Context, tx *sql.Tx, acc persistence.Account) (bool, error) {
	res, err := txStmt(ctx, tx, t.insertAccount).ExecContext(ctx,
		acc.Localpart, acc.PasswordHash, acc.IsAdmin, acc.Deactivated, acc.CreatedTS)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SelectAccount returns sql.ErrNoRows for an unknown localpart.
func (t *accountsTable) SelectAccount(ctx context.Context, localpart string) (*persistence.Account, error) {
	var a persistence.Account
	err := t.selectAccount.QueryRowContext(ctx, localpart).Scan(
		&a.Localpart, &a.PasswordHash, &a.IsAdmin, &a.Deactivated, &a.CreatedTS)
	if err != nil {
		return nil, err
	}
	return &a, nil
}
