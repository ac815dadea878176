package persistence

import "context"

// ServerKey is one signing key of a remote homeserver, as the keyring
// learnt it. A current key has ValidUntilTS (how long it may be trusted
// without refetching) and ExpiredTS 0; an old key (old_verify_keys) has
// ExpiredTS, after which nothing it signed is valid, and ValidUntilTS 0.
type ServerKey struct {
	ServerName   string
	KeyID        string
	PublicKey    []byte // the 32-byte ed25519 public key
	ValidUntilTS int64  // Unix milliseconds
	ExpiredTS    int64  // Unix milliseconds
}

// ServerKeyID names one key of one server.
type ServerKeyID struct {
	ServerName string
	KeyID      string
}

// ServerKeyResponse is the newest signed /_matrix/key/v2/server response
// a remote server gave: what this server, as a notary, hands on to others
// with its own signature added.
type ServerKeyResponse struct {
	ServerName   string
	ValidUntilTS int64  // the response's valid_until_ts, Unix milliseconds
	JSON         []byte // exactly as the server signed it
}

// ServerKeyStore caches remote servers' signing keys. Keys are never
// deleted: an old key still verifies what it signed before it expired.
type ServerKeyStore interface {
	// StoreServerKeys inserts the keys or, for a known (server, key ID),
	// replaces its public key and timestamps with the newer knowledge.
	StoreServerKeys(ctx context.Context, keys []ServerKey) error
	// ServerKeys returns those of the asked keys that are stored, in no
	// particular order.
	ServerKeys(ctx context.Context, ids []ServerKeyID) ([]ServerKey, error)
	// StoreServerKeyResponse keeps r as the server's newest response,
	// unless the stored one is valid for longer.
	StoreServerKeyResponse(ctx context.Context, r ServerKeyResponse) error
	// ServerKeyResponse returns ErrNotFound when none is stored.
	ServerKeyResponse(ctx context.Context, serverName string) (*ServerKeyResponse, error)
}
