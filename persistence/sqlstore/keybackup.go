package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/soma-chat/soma/persistence"
)

// The server-side key backup store (persistence.KeyBackupStore). Version
// strings are the decimal version numbers; etags the decimal counter of the
// version's changes.

// parseKeyBackupVersion reads a version string; false for one this store
// never hands out.
func parseKeyBackupVersion(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != v {
		return 0, false
	}
	return n, true
}

// CreateKeyBackupVersion implements persistence.KeyBackupStore.
func (s *Store) CreateKeyBackupVersion(ctx context.Context, userID, algorithm string, authData json.RawMessage) (string, error) {
	if !json.Valid(authData) {
		return "", fmt.Errorf("persistence.CreateKeyBackupVersion: auth_data is not JSON")
	}
	// A concurrent creation may take the number this one read: try again
	// with the next.
	for range 5 {
		var v int64
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			var err error
			v, err = s.keyBackupVersions.InsertKeyBackupVersion(ctx, tx, userID, algorithm, authData)
			return err
		})
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("persistence.CreateKeyBackupVersion: %w", err)
		}
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("persistence.CreateKeyBackupVersion: too many concurrent creations")
}

// KeyBackupVersion implements persistence.KeyBackupStore.
func (s *Store) KeyBackupVersion(ctx context.Context, userID, version string) (*persistence.KeyBackupVersion, error) {
	var out *persistence.KeyBackupVersion
	// Outside a transaction (on SQLite every transaction is a writer):
	// a concurrent write may make the count newer than the etag.
	err := func(tx *sql.Tx) error {
		var n int64
		if version == "" {
			var err error
			if n, err = s.keyBackupVersions.SelectCurrentKeyBackupVersion(ctx, tx, userID); err != nil {
				return notFoundIfNoRows(err)
			}
		} else {
			var ok bool
			if n, ok = parseKeyBackupVersion(version); !ok {
				return persistence.ErrNotFound
			}
		}
		v, etag, deleted, err := s.keyBackupVersions.SelectKeyBackupVersion(ctx, tx, userID, n)
		if err != nil {
			return notFoundIfNoRows(err)
		}
		if deleted {
			return persistence.ErrNotFound
		}
		v.Version, v.Etag = strconv.FormatInt(n, 10), strconv.FormatInt(etag, 10)
		if v.Count, err = s.keyBackupSessions.CountKeyBackupSessions(ctx, tx, userID, n); err != nil {
			return err
		}
		out = v
		return nil
	}(nil)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("persistence.KeyBackupVersion: %w", err)
	}
	return out, nil
}

// UpdateKeyBackupAuthData implements persistence.KeyBackupStore.
func (s *Store) UpdateKeyBackupAuthData(ctx context.Context, userID, version string, authData json.RawMessage) error {
	n, ok := parseKeyBackupVersion(version)
	if !ok {
		return persistence.ErrNotFound
	}
	if !json.Valid(authData) {
		return fmt.Errorf("persistence.UpdateKeyBackupAuthData: auth_data is not JSON")
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		found, err := s.keyBackupVersions.UpdateKeyBackupAuthData(ctx, tx, userID, n, authData)
		if err == nil && !found {
			err = persistence.ErrNotFound
		}
		return err
	})
	if errors.Is(err, persistence.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("persistence.UpdateKeyBackupAuthData: %w", err)
	}
	return nil
}

// DeleteKeyBackupVersion implements persistence.KeyBackupStore.
func (s *Store) DeleteKeyBackupVersion(ctx context.Context, userID, version string) error {
	n, ok := parseKeyBackupVersion(version)
	if !ok {
		return persistence.ErrNotFound
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		found, err := s.keyBackupVersions.MarkKeyBackupVersionDeleted(ctx, tx, userID, n)
		if err != nil {
			return err
		}
		if !found {
			return persistence.ErrNotFound
		}
		_, err = s.keyBackupSessions.DeleteKeyBackupSessions(ctx, tx, userID, n, "", "")
		return err
	})
	if errors.Is(err, persistence.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("persistence.DeleteKeyBackupVersion: %w", err)
	}
	return nil
}

// PutKeyBackupSessions implements persistence.KeyBackupStore.
func (s *Store) PutKeyBackupSessions(ctx context.Context, userID, version string, sessions []persistence.KeyBackupSession) (string, int, error) {
	for i := range sessions {
		if !json.Valid(sessions[i].SessionData) {
			return "", 0, fmt.Errorf("persistence.PutKeyBackupSessions: session %d: session_data is not JSON", i)
		}
	}
	var etag string
	var count int
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		current, err := s.keyBackupVersions.SelectCurrentKeyBackupVersion(ctx, tx, userID)
		if err != nil {
			return notFoundIfNoRows(err)
		}
		if n, ok := parseKeyBackupVersion(version); !ok || n != current {
			return persistence.ErrWrongKeyBackupVersion
		}
		// Hold the version: concurrent writes of its keys compare with
		// what the other wrote, and a deletion waits.
		if found, err := s.keyBackupVersions.LockKeyBackupVersion(ctx, tx, userID, current); err != nil || !found {
			if err == nil {
				err = persistence.ErrNotFound
			}
			return err
		}
		changed := false
		for i := range sessions {
			k := &sessions[i]
			old, err := s.keyBackupSessions.SelectKeyBackupSessions(ctx, tx, userID, current, k.RoomID, k.SessionID)
			if err != nil {
				return err
			}
			if len(old) > 0 && !k.Better(&old[0]) {
				continue
			}
			if err := s.keyBackupSessions.UpsertKeyBackupSession(ctx, tx, userID, current, k); err != nil {
				return err
			}
			changed = true
		}
		if changed {
			if err := s.keyBackupVersions.BumpKeyBackupEtag(ctx, tx, userID, current); err != nil {
				return err
			}
		}
		etag, count, err = s.keyBackupEtagAndCount(ctx, tx, userID, current)
		return err
	})
	if errors.Is(err, persistence.ErrNotFound) || errors.Is(err, persistence.ErrWrongKeyBackupVersion) {
		return "", 0, err
	}
	if err != nil {
		return "", 0, fmt.Errorf("persistence.PutKeyBackupSessions: %w", err)
	}
	return etag, count, nil
}

// KeyBackupSessions implements persistence.KeyBackupStore.
func (s *Store) KeyBackupSessions(ctx context.Context, userID, version, roomID, sessionID string) ([]persistence.KeyBackupSession, error) {
	n, ok := parseKeyBackupVersion(version)
	if !ok {
		return nil, persistence.ErrNotFound
	}
	var out []persistence.KeyBackupSession
	err := func(tx *sql.Tx) error {
		if _, _, deleted, err := s.keyBackupVersions.SelectKeyBackupVersion(ctx, tx, userID, n); err != nil || deleted {
			if err == nil {
				err = persistence.ErrNotFound
			}
			return notFoundIfNoRows(err)
		}
		var err error
		out, err = s.keyBackupSessions.SelectKeyBackupSessions(ctx, tx, userID, n, roomID, sessionID)
		return err
	}(nil)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("persistence.KeyBackupSessions: %w", err)
	}
	return out, nil
}

// DeleteKeyBackupSessions implements persistence.KeyBackupStore.
func (s *Store) DeleteKeyBackupSessions(ctx context.Context, userID, version, roomID, sessionID string) (string, int, error) {
	n, ok := parseKeyBackupVersion(version)
	if !ok {
		return "", 0, persistence.ErrNotFound
	}
	var etag string
	var count int
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if found, err := s.keyBackupVersions.LockKeyBackupVersion(ctx, tx, userID, n); err != nil || !found {
			if err == nil {
				err = persistence.ErrNotFound
			}
			return err
		}
		deleted, err := s.keyBackupSessions.DeleteKeyBackupSessions(ctx, tx, userID, n, roomID, sessionID)
		if err != nil {
			return err
		}
		if deleted {
			if err := s.keyBackupVersions.BumpKeyBackupEtag(ctx, tx, userID, n); err != nil {
				return err
			}
		}
		etag, count, err = s.keyBackupEtagAndCount(ctx, tx, userID, n)
		return err
	})
	if errors.Is(err, persistence.ErrNotFound) {
		return "", 0, err
	}
	if err != nil {
		return "", 0, fmt.Errorf("persistence.DeleteKeyBackupSessions: %w", err)
	}
	return etag, count, nil
}

func (s *Store) keyBackupEtagAndCount(ctx context.Context, tx *sql.Tx, userID string, version int64) (string, int, error) {
	_, etag, _, err := s.keyBackupVersions.SelectKeyBackupVersion(ctx, tx, userID, version)
	if err != nil {
		return "", 0, err
	}
	count, err := s.keyBackupSessions.CountKeyBackupSessions(ctx, tx, userID, version)
	return strconv.FormatInt(etag, 10), count, err
}
