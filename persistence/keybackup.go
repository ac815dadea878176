package persistence

import (
	"context"
	"encoding/json"
	"errors"
)

// Server-side key backup: each local user's backup versions and the room
// keys (megolm sessions, encrypted by the client) stored in them. Keys are
// written only to the user's current version: the newest one not deleted.

// ErrWrongKeyBackupVersion is returned by the writes of room keys to a
// version that exists but is not the user's current one.
var ErrWrongKeyBackupVersion = errors.New("persistence: not the current key backup version")

// KeyBackupVersion is one backup version of a user.
type KeyBackupVersion struct {
	// Version is opaque to clients: a decimal number, increasing per user.
	Version   string
	Algorithm string
	AuthData  json.RawMessage
	// Etag changes whenever the version's room keys change.
	Etag string
	// Count is how many room keys the version holds.
	Count int
}

// KeyBackupSession is the backed-up key of one megolm session.
type KeyBackupSession struct {
	RoomID            string
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       json.RawMessage
}

// Better reports whether k should replace old, by the spec's rules: a
// verified key beats an unverified one, then the lower first message
// index wins, then the lower forwarded count. An equal key is not better.
func (k *KeyBackupSession) Better(old *KeyBackupSession) bool {
	if k.IsVerified != old.IsVerified {
		return k.IsVerified
	}
	if k.FirstMessageIndex != old.FirstMessageIndex {
		return k.FirstMessageIndex < old.FirstMessageIndex
	}
	return k.ForwardedCount < old.ForwardedCount
}

// KeyBackupStore keeps server-side key backups.
type KeyBackupStore interface {
	// CreateKeyBackupVersion adds a version, which becomes the user's
	// current one, and returns its version string.
	CreateKeyBackupVersion(ctx context.Context, userID, algorithm string, authData json.RawMessage) (string, error)
	// KeyBackupVersion returns a version of the user, or the current one
	// when version is ""; ErrNotFound for an unknown or deleted version,
	// or when the user has no current version.
	KeyBackupVersion(ctx context.Context, userID, version string) (*KeyBackupVersion, error)
	// UpdateKeyBackupAuthData replaces a version's auth_data; ErrNotFound
	// for an unknown or deleted version.
	UpdateKeyBackupAuthData(ctx context.Context, userID, version string, authData json.RawMessage) error
	// DeleteKeyBackupVersion deletes a version and its room keys;
	// deleting a deleted version is not an error, an unknown one is
	// ErrNotFound. Version strings are never reused.
	DeleteKeyBackupVersion(ctx context.Context, userID, version string) error
	// PutKeyBackupSessions stores room keys in the version, keeping a
	// stored key of a session unless the new one is Better, in one
	// transaction; it returns the version's etag and count after.
	// ErrNotFound when the user has no current version,
	// ErrWrongKeyBackupVersion when version is not the current one.
	PutKeyBackupSessions(ctx context.Context, userID, version string, sessions []KeyBackupSession) (etag string, count int, err error)
	// KeyBackupSessions returns the version's room keys: all of them when
	// roomID is "", the room's when sessionID is "", else the session's
	// (none when it is not stored). Ordered by room and session ID;
	// ErrNotFound for an unknown or deleted version.
	KeyBackupSessions(ctx context.Context, userID, version, roomID, sessionID string) ([]KeyBackupSession, error)
	// DeleteKeyBackupSessions deletes the version's room keys selected as
	// by KeyBackupSessions and returns its etag and count after;
	// ErrNotFound for an unknown or deleted version.
	DeleteKeyBackupSessions(ctx context.Context, userID, version, roomID, sessionID string) (etag string, count int, err error)
}
