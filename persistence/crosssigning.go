package persistence

import (
	"context"
	"encoding/json"
)

// Cross-signing: each local user's master, self-signing and user-signing
// keys, and the signatures uploaded for devices' and master keys. A change
// of either records a device list change, so that those who share a room
// with the user refetch the user's keys.

// Cross-signing key usages, as the keys' "usage" arrays name them.
const (
	CrossSigningMaster      = "master"
	CrossSigningSelfSigning = "self_signing"
	CrossSigningUserSigning = "user_signing"
)

// CrossSigningKey is one of a user's cross-signing keys.
type CrossSigningKey struct {
	// Usage is CrossSigningMaster, CrossSigningSelfSigning or
	// CrossSigningUserSigning.
	Usage string
	// KeyID is the key's ID as in its "keys" object: "ed25519:<public key>".
	KeyID string
	// Key is the key object as uploaded.
	Key json.RawMessage
}

// CrossSigningSignature is a signature by a signer's key (a device or a
// cross-signing key) of a target key: a device of the target user (by
// device ID) or the target user's master key (by its public key).
type CrossSigningSignature struct {
	SignerUserID string
	SignerKeyID  string // "ed25519:<device ID or public key>"
	TargetUserID string
	TargetKeyID  string // a device ID or a master public key
	Signature    string
}

// CrossSigningStore keeps cross-signing keys and signatures of local users.
type CrossSigningStore interface {
	// PutCrossSigningKeys stores the user's keys (replacing those of the
	// same usage) and records a device list change for the user at pos,
	// in one transaction.
	PutCrossSigningKeys(ctx context.Context, userID string, keys []CrossSigningKey) (pos StreamPos, err error)
	// CrossSigningKeys returns the user's keys by usage; none when the
	// user has none.
	CrossSigningKeys(ctx context.Context, userID string) (map[string]CrossSigningKey, error)
	// PutCrossSigningSignatures stores signatures (replacing one of the
	// same signer key and target key) and records a device list change
	// for each target user, in one transaction; it returns the positions
	// by target user.
	PutCrossSigningSignatures(ctx context.Context, sigs []CrossSigningSignature) (map[string]StreamPos, error)
	// CrossSigningSignatures returns the signatures of the target user's
	// keys, ordered by target key, signer and signer key.
	CrossSigningSignatures(ctx context.Context, targetUserID string) ([]CrossSigningSignature, error)
}
