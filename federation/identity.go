package federation

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Identity is who this server is on the federation: its name and the key
// it signs with, and how long others may cache that key.
type Identity struct {
	ServerName spec.ServerName
	Key        *SigningKey
	// KeyValidity is how far ahead of now valid_until_ts lies in the key
	// responses this server publishes.
	KeyValidity time.Duration
	// OldKeys are keys this server signed with before Key, published
	// under old_verify_keys.
	OldKeys []OldKey
}

// OldKey is a retired signing key: it verifies what it signed before
// ExpiredTS.
type OldKey struct {
	KeyID     gomatrixserverlib.KeyID
	Public    ed25519.PublicKey
	ExpiredTS spec.Timestamp
}

// signingIdentity is the identity as fclient's federation client takes it.
func (id *Identity) signingIdentity() *fclient.SigningIdentity {
	return &fclient.SigningIdentity{ServerName: id.ServerName, KeyID: id.Key.KeyID, PrivateKey: id.Key.Private}
}

// SelfKeys is this server's own key response, as GET /_matrix/key/v2/server
// serves it: the current verify key, valid until now+KeyValidity, the old
// keys with their expiry, signed by the current key.
func (id *Identity) SelfKeys(now time.Time) ([]byte, spec.Timestamp, error) {
	validUntil := spec.AsTimestamp(now.Add(id.KeyValidity))
	fields := gomatrixserverlib.ServerKeyFields{
		ServerName:    id.ServerName,
		ValidUntilTS:  validUntil,
		VerifyKeys:    map[gomatrixserverlib.KeyID]gomatrixserverlib.VerifyKey{id.Key.KeyID: {Key: spec.Base64Bytes(id.Key.Public())}},
		OldVerifyKeys: map[gomatrixserverlib.KeyID]gomatrixserverlib.OldVerifyKey{},
	}
	for _, old := range id.OldKeys {
		fields.OldVerifyKeys[old.KeyID] = gomatrixserverlib.OldVerifyKey{
			VerifyKey: gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(old.Public)}, ExpiredTS: old.ExpiredTS,
		}
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, 0, fmt.Errorf("federation.SelfKeys: %w", err)
	}
	signed, err := gomatrixserverlib.SignJSON(string(id.ServerName), id.Key.KeyID, id.Key.Private, raw)
	if err != nil {
		return nil, 0, fmt.Errorf("federation.SelfKeys: %w", err)
	}
	return signed, validUntil, nil
}

// Countersign adds this server's signature to another server's key
// response, keeping that server's own: what a notary hands out.
func (id *Identity) Countersign(response []byte) ([]byte, error) {
	signed, err := gomatrixserverlib.SignJSON(string(id.ServerName), id.Key.KeyID, id.Key.Private, response)
	if err != nil {
		return nil, fmt.Errorf("federation.Countersign: %w", err)
	}
	return signed, nil
}
