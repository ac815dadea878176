package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// key_backup_versions: each local user's key backup versions, numbered
// from 1 per user. A deleted version keeps its row (marked deleted) so
// that its number is never handed out again.

// insertKeyBackupVersionSQL takes the user's next version number; a
// concurrent insert that took it first leaves no row (the caller retries).
const insertKeyBackupVersionSQL = `
INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data, etag, deleted)
SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, 0, FALSE FROM key_backup_versions WHERE user_id = $1
ON CONFLICT (user_id, version) DO NOTHING
RETURNING version`

const selectCurrentKeyBackupVersionSQL = `
SELECT version FROM key_backup_versions WHERE user_id = $1 AND NOT deleted
ORDER BY version DESC LIMIT 1`

const selectKeyBackupVersionSQL = `
SELECT algorithm, auth_data, etag, deleted FROM key_backup_versions WHERE user_id = $1 AND version = $2`

const updateKeyBackupAuthDataSQL = `
UPDATE key_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2 AND NOT deleted`

const markKeyBackupVersionDeletedSQL = `
UPDATE key_backup_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2`

// lockKeyBackupVersionSQL changes nothing but holds the version's row for
// the transaction (on PostgreSQL), serialising the writes of its keys.
const lockKeyBackupVersionSQL = `
UPDATE key_backup_versions SET etag = etag WHERE user_id = $1 AND version = $2 AND NOT deleted`

const bumpKeyBackupEtagSQL = `
UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`

type keyBackupVersionsTable struct {
	insert, selectCurrent, selectOne, updateAuthData, markDeleted, lock, bumpEtag *sql.Stmt
}

func prepareKeyBackupVersionsTable(p *preparer) *keyBackupVersionsTable {
	return &keyBackupVersionsTable{
		insert:         p.prepare(insertKeyBackupVersionSQL),
		selectCurrent:  p.prepare(selectCurrentKeyBackupVersionSQL),
		selectOne:      p.prepare(selectKeyBackupVersionSQL),
		updateAuthData: p.prepare(updateKeyBackupAuthDataSQL),
		markDeleted:    p.prepare(markKeyBackupVersionDeletedSQL),
		lock:           p.prepare(lockKeyBackupVersionSQL),
		bumpEtag:       p.prepare(bumpKeyBackupEtagSQL),
	}
}

// InsertKeyBackupVersion returns sql.ErrNoRows when a concurrent insert
// took the next number.
func (t *keyBackupVersionsTable) InsertKeyBackupVersion(ctx context.Context, tx *sql.Tx, userID, algorithm string, authData json.RawMessage) (int64, error) {
	var v int64
	err := txStmt(ctx, tx, t.insert).QueryRowContext(ctx, userID, algorithm, string(authData)).Scan(&v)
	return v, err
}

// SelectCurrentKeyBackupVersion returns sql.ErrNoRows when the user has
// no version that is not deleted.
func (t *keyBackupVersionsTable) SelectCurrentKeyBackupVersion(ctx context.Context, tx *sql.Tx, userID string) (int64, error) {
	var v int64
	err := txStmt(ctx, tx, t.selectCurrent).QueryRowContext(ctx, userID).Scan(&v)
	return v, err
}

// SelectKeyBackupVersion returns sql.ErrNoRows for an unknown version.
func (t *keyBackupVersionsTable) SelectKeyBackupVersion(ctx context.Context, tx *sql.Tx, userID string, version int64) (v *persistence.KeyBackupVersion, etag int64, deleted bool, err error) {
	v = &persistence.KeyBackupVersion{}
	var authData string
	err = txStmt(ctx, tx, t.selectOne).QueryRowContext(ctx, userID, version).Scan(&v.Algorithm, &authData, &etag, &deleted)
	v.AuthData = json.RawMessage(authData)
	return v, etag, deleted, err
}

// UpdateKeyBackupAuthData reports whether the version exists undeleted.
func (t *keyBackupVersionsTable) UpdateKeyBackupAuthData(ctx context.Context, tx *sql.Tx, userID string, version int64, authData json.RawMessage) (bool, error) {
	return execChanged(ctx, txStmt(ctx, tx, t.updateAuthData), userID, version, string(authData))
}

// MarkKeyBackupVersionDeleted reports whether the version exists.
func (t *keyBackupVersionsTable) MarkKeyBackupVersionDeleted(ctx context.Context, tx *sql.Tx, userID string, version int64) (bool, error) {
	return execChanged(ctx, txStmt(ctx, tx, t.markDeleted), userID, version)
}

// LockKeyBackupVersion reports whether the version exists undeleted.
func (t *keyBackupVersionsTable) LockKeyBackupVersion(ctx context.Context, tx *sql.Tx, userID string, version int64) (bool, error) {
	return execChanged(ctx, txStmt(ctx, tx, t.lock), userID, version)
}

func (t *keyBackupVersionsTable) BumpKeyBackupEtag(ctx context.Context, tx *sql.Tx, userID string, version int64) error {
	_, err := txStmt(ctx, tx, t.bumpEtag).ExecContext(ctx, userID, version)
	return err
}

// execChanged runs a statement and reports whether it changed a row.
func execChanged(ctx context.Context, st *sql.Stmt, args ...any) (bool, error) {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
