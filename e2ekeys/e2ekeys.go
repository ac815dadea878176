// Package e2ekeys answers what others ask of local users' end-to-end
// encryption keys: identity keys with display names and cross-signing
// signatures, cross-signing keys, and one-time key claims. The
// Client-Server API (for local requesters) and the Server-Server API (for
// remote servers) share it.
package e2ekeys

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// Store is what key queries and claims read of storage.
type Store interface {
	DeviceKeys(ctx context.Context, userID string, deviceIDs []string) (map[string]json.RawMessage, error)
	ListDevices(ctx context.Context, localpart string) ([]persistence.Device, error)
	CrossSigningKeys(ctx context.Context, userID string) (map[string]persistence.CrossSigningKey, error)
	CrossSigningSignatures(ctx context.Context, targetUserID string) ([]persistence.CrossSigningSignature, error)
	ClaimKey(ctx context.Context, userID, deviceID, algorithm string) (*persistence.OneTimeKey, error)
}

// Query collects the answer to a keys query about local users.
type Query struct {
	// Requester is the user asking, "" for a remote server: a master key
	// carries the signatures of its owner and of the requester (whom
	// else a user verified is theirs to know), and the user-signing key
	// goes to its owner only.
	Requester string
	// DeviceKeys are the devices' identity keys by user and device ID,
	// with unsigned.device_display_name and the stored cross-signing
	// signatures merged in.
	DeviceKeys                       map[string]map[string]json.RawMessage
	Master, SelfSigning, UserSigning map[string]json.RawMessage
}

// NewQuery starts an empty answer for the requester ("" for a server).
func NewQuery(requester string) *Query {
	return &Query{
		Requester:  requester,
		DeviceKeys: map[string]map[string]json.RawMessage{},
		Master:     map[string]json.RawMessage{}, SelfSigning: map[string]json.RawMessage{}, UserSigning: map[string]json.RawMessage{},
	}
}

// AddUser adds a local user's keys: those of deviceIDs (every device when
// empty) and the user's cross-signing keys.
func (q *Query) AddUser(ctx context.Context, store Store, userID string, deviceIDs []string) error {
	keys, err := store.DeviceKeys(ctx, userID, deviceIDs)
	if err != nil {
		return err
	}
	named, err := withDisplayNames(ctx, store, userID, keys)
	if err != nil {
		return err
	}
	if err := q.addCrossSigning(ctx, store, userID, named); err != nil {
		return err
	}
	q.DeviceKeys[userID] = named
	return nil
}

// Localpart is the localpart of a user ID ("" when it is not one).
func Localpart(userID string) string {
	lp, _, ok := strings.Cut(userID, ":")
	if !ok || !strings.HasPrefix(lp, "@") {
		return ""
	}
	return lp[1:]
}

// withDisplayNames adds unsigned.device_display_name to each device's keys.
func withDisplayNames(ctx context.Context, store Store, userID string, keys map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	devices, err := store.ListDevices(ctx, Localpart(userID))
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, d := range devices {
		names[d.DeviceID] = d.DisplayName
	}
	out := make(map[string]json.RawMessage, len(keys))
	for id, k := range keys {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(k, &obj); err != nil {
			continue // stored keys are objects; skip one that is not
		}
		if name := names[id]; name != "" {
			unsigned := map[string]any{}
			_ = json.Unmarshal(obj["unsigned"], &unsigned)
			unsigned["device_display_name"] = name
			obj["unsigned"], _ = json.Marshal(unsigned)
		}
		out[id], _ = json.Marshal(obj)
	}
	return out, nil
}

// addCrossSigning adds a local user's cross-signing keys to the answer
// and the stored signatures to the user's device keys (in place).
func (q *Query) addCrossSigning(ctx context.Context, store Store, userID string, deviceKeys map[string]json.RawMessage) error {
	keys, err := store.CrossSigningKeys(ctx, userID)
	if err != nil {
		return err
	}
	sigs, err := store.CrossSigningSignatures(ctx, userID)
	if err != nil {
		return err
	}
	byTarget := map[string][]persistence.CrossSigningSignature{}
	for _, sig := range sigs {
		byTarget[sig.TargetKeyID] = append(byTarget[sig.TargetKeyID], sig)
	}
	for deviceID, k := range deviceKeys {
		if len(byTarget[deviceID]) > 0 {
			deviceKeys[deviceID] = WithSignatures(k, byTarget[deviceID])
		}
	}
	if m, ok := keys[persistence.CrossSigningMaster]; ok {
		pub := strings.TrimPrefix(m.KeyID, "ed25519:")
		var visible []persistence.CrossSigningSignature
		for _, sig := range byTarget[pub] {
			if sig.SignerUserID == userID || (q.Requester != "" && sig.SignerUserID == q.Requester) {
				visible = append(visible, sig)
			}
		}
		q.Master[userID] = WithSignatures(m.Key, visible)
	}
	if k, ok := keys[persistence.CrossSigningSelfSigning]; ok {
		q.SelfSigning[userID] = k.Key
	}
	if k, ok := keys[persistence.CrossSigningUserSigning]; ok && userID == q.Requester {
		q.UserSigning[userID] = k.Key
	}
	return nil
}

// WithSignatures merges signatures into a signed object's "signatures".
func WithSignatures(signed json.RawMessage, sigs []persistence.CrossSigningSignature) json.RawMessage {
	if len(sigs) == 0 {
		return signed
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(signed, &obj); err != nil {
		return signed // stored keys are objects; leave one that is not
	}
	all := map[string]map[string]string{}
	_ = json.Unmarshal(obj["signatures"], &all)
	for _, sig := range sigs {
		if all[sig.SignerUserID] == nil {
			all[sig.SignerUserID] = map[string]string{}
		}
		all[sig.SignerUserID][sig.SignerKeyID] = sig.Signature
	}
	obj["signatures"], _ = json.Marshal(all)
	out, err := json.Marshal(obj)
	if err != nil {
		return signed
	}
	return out
}

// Claimed are claimed keys: user ID → device ID → "algorithm:key_id" → key.
type Claimed map[string]map[string]map[string]json.RawMessage

// Claim claims one key of the algorithm for each device of a local user:
// a one-time key, else the device's fallback key. Devices with neither
// are left out.
func (c Claimed) Claim(ctx context.Context, store Store, userID string, devices map[string]string) error {
	for deviceID, alg := range devices {
		k, err := store.ClaimKey(ctx, userID, deviceID, alg)
		if errors.Is(err, persistence.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if c[userID] == nil {
			c[userID] = map[string]map[string]json.RawMessage{}
		}
		c[userID][deviceID] = map[string]json.RawMessage{k.Algorithm + ":" + k.KeyID: k.Key}
	}
	return nil
}
