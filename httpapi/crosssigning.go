package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"

	"github.com/soma-chat/soma/persistence"
)

// Cross-signing: a user publishes a master key, a self-signing key (which
// signs the user's devices) and a user-signing key (which signs other
// users' master keys), then signatures made with them. POST /keys/query
// returns them, with the signatures merged in; every change is a device
// list change of the user whose keys got it.

func (s *Server) crossSigningRoutes(r chi.Router) {
	r.Post("/keys/device_signing/upload", s.serve(s.authed(s.uploadCrossSigningKeys)))
	r.Post("/keys/signatures/upload", s.serve(s.authed(s.uploadSignatures)))
}

// crossSigningKeyJSON is what the server checks of a cross-signing key.
type crossSigningKeyJSON struct {
	UserID     string                       `json:"user_id"`
	Usage      []string                     `json:"usage"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// parsedCrossSigningKey is a checked cross-signing key.
type parsedCrossSigningKey struct {
	persistence.CrossSigningKey
	pub ed25519.PublicKey
}

// parseCrossSigningKey checks an uploaded key of the usage: the caller's,
// with exactly one ed25519 key named by its public key.
func parseCrossSigningKey(raw json.RawMessage, field, usage, userID string) (*parsedCrossSigningKey, error) {
	var k crossSigningKeyJSON
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, errBadJSON(field + " must be a cross-signing key object")
	}
	if k.UserID != userID {
		return nil, errInvalidParam(field + ": user_id must be the caller's")
	}
	hasUsage := false
	for _, u := range k.Usage {
		hasUsage = hasUsage || u == usage
	}
	if !hasUsage {
		return nil, errInvalidParam(field + ": usage must include " + usage)
	}
	if len(k.Keys) != 1 {
		return nil, errInvalidParam(field + ": keys must hold exactly one key")
	}
	var id, value string
	for id, value = range k.Keys {
	}
	pub, ok := decodeEd25519Key(value)
	if !ok || id != "ed25519:"+value {
		return nil, errInvalidParam(field + ": the key must be ed25519:<public key> with the unpadded base64 ed25519 public key")
	}
	return &parsedCrossSigningKey{
		CrossSigningKey: persistence.CrossSigningKey{Usage: usage, KeyID: id, Key: raw},
		pub:             pub,
	}, nil
}

// decodeEd25519Key decodes an unpadded (or padded) base64 public key.
func decodeEd25519Key(s string) (ed25519.PublicKey, bool) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, false
	}
	return ed25519.PublicKey(b), true
}

// storedPublicKey is the public key of a stored cross-signing key.
func storedPublicKey(k persistence.CrossSigningKey) (string, ed25519.PublicKey, bool) {
	pub, ok := strings.CutPrefix(k.KeyID, "ed25519:")
	if !ok {
		return "", nil, false
	}
	key, ok := decodeEd25519Key(pub)
	return pub, key, ok
}

// sameSignedJSON reports whether two signed objects are the same but for
// their signatures and unsigned data.
func sameSignedJSON(a, b json.RawMessage) bool {
	ca, errA := signedContent(a)
	cb, errB := signedContent(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// sameJSON reports whether two objects are the same, signatures included.
func sameJSON(a, b json.RawMessage) bool {
	ca, errA := gomatrixserverlib.CanonicalJSON(a)
	cb, errB := gomatrixserverlib.CanonicalJSON(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// signedContent is the canonical JSON an object's signatures sign.
func signedContent(raw json.RawMessage) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	delete(obj, "signatures")
	delete(obj, "unsigned")
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return gomatrixserverlib.CanonicalJSON(b)
}

func errInvalidSignature(msg string) *MatrixError {
	return matrixError(http.StatusBadRequest, "M_INVALID_SIGNATURE", msg)
}

type uploadCrossSigningKeysRequest struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
	Auth           json.RawMessage `json:"auth"`
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// uploadCrossSigningKeys: POST /keys/device_signing/upload. As the spec
// allows (and Synapse does), user-interactive authentication is skipped
// when the user has no master key yet, and when the request holds no key
// that differs from the stored ones.
func (s *Server) uploadCrossSigningKeys(r *http.Request) (int, any, error) {
	var req uploadCrossSigningKeysRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	ctx := r.Context()
	stored, err := s.store.CrossSigningKeys(ctx, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	var uploaded []*parsedCrossSigningKey
	for _, f := range []struct {
		raw          json.RawMessage
		field, usage string
	}{
		{req.MasterKey, "master_key", persistence.CrossSigningMaster},
		{req.SelfSigningKey, "self_signing_key", persistence.CrossSigningSelfSigning},
		{req.UserSigningKey, "user_signing_key", persistence.CrossSigningUserSigning},
	} {
		if !present(f.raw) {
			continue
		}
		k, err := parseCrossSigningKey(f.raw, f.field, f.usage, c.UserID)
		if err != nil {
			return 0, nil, err
		}
		uploaded = append(uploaded, k)
	}

	// The master key that signs the others: the uploaded one, else the
	// stored one.
	var masterID string
	var masterPub ed25519.PublicKey
	if m, ok := stored[persistence.CrossSigningMaster]; ok {
		var pub string
		if pub, masterPub, ok = storedPublicKey(m); ok {
			masterID = "ed25519:" + pub
		}
	}
	changed := make([]persistence.CrossSigningKey, 0, len(uploaded))
	for _, k := range uploaded {
		if k.Usage == persistence.CrossSigningMaster {
			masterID, masterPub = k.KeyID, k.pub
		}
		if old, ok := stored[k.Usage]; !ok || !sameJSON(old.Key, k.Key) {
			changed = append(changed, k.CrossSigningKey)
		}
	}
	for _, k := range uploaded {
		if k.Usage == persistence.CrossSigningMaster {
			continue
		}
		if masterPub == nil {
			return 0, nil, errMissingParam("No master key is available to check the " + k.Usage + " key's signature")
		}
		if err := gomatrixserverlib.VerifyJSON(c.UserID, gomatrixserverlib.KeyID(masterID), masterPub, k.Key); err != nil {
			return 0, nil, errInvalidSignature("The " + k.Usage + " key is not signed by the master key: " + err.Error())
		}
	}
	if len(changed) == 0 {
		return http.StatusOK, struct{}{}, nil
	}
	devices, err := s.store.ListDevices(ctx, c.Localpart)
	if err != nil {
		return 0, nil, err
	}
	for _, k := range uploaded {
		pub := strings.TrimPrefix(k.KeyID, "ed25519:")
		for _, d := range devices {
			if d.DeviceID == pub {
				return 0, nil, errForbidden("Key ID in use: a device has the ID " + pub)
			}
		}
	}
	if _, hasMaster := stored[persistence.CrossSigningMaster]; hasMaster {
		if challenge, err := s.authenticate(r, req.Auth); challenge != nil || err != nil {
			return http.StatusUnauthorized, challenge, err
		}
	}
	pos, err := s.store.PutCrossSigningKeys(ctx, c.UserID, changed)
	if err != nil {
		return 0, nil, err
	}
	if err := s.publishDeviceListChange(ctx, c.UserID, pos); err != nil {
		return 0, nil, err
	}
	if slices.ContainsFunc(changed, func(k persistence.CrossSigningKey) bool { return k.Usage != persistence.CrossSigningUserSigning }) {
		s.federateSigningKeys(ctx, c.UserID)
	}
	return http.StatusOK, struct{}{}, nil
}

// signatureFailure is one entry of the failures of POST
// /keys/signatures/upload.
type signatureFailure struct {
	ErrCode string `json:"errcode"`
	Err     string `json:"error"`
}

// signatureUpload collects the signatures and failures of one request.
type signatureUpload struct {
	signer   string
	sigs     []persistence.CrossSigningSignature
	failures map[string]map[string]signatureFailure
}

func (u *signatureUpload) fail(userID, keyID, code, msg string) {
	if u.failures[userID] == nil {
		u.failures[userID] = map[string]signatureFailure{}
	}
	u.failures[userID][keyID] = signatureFailure{ErrCode: code, Err: msg}
}

// signatureBy returns the signature of signed by the signer's key, after
// checking it against pub.
func (u *signatureUpload) signatureBy(signed json.RawMessage, keyID string, pub ed25519.PublicKey) (string, error) {
	if err := gomatrixserverlib.VerifyJSON(u.signer, gomatrixserverlib.KeyID(keyID), pub, signed); err != nil {
		return "", err
	}
	var obj struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal(signed, &obj); err != nil {
		return "", err
	}
	return obj.Signatures[u.signer][keyID], nil
}

// uploadSignatures: POST /keys/signatures/upload. The caller signs their
// own devices with their self-signing key, their master key with their
// devices, and other users' master keys with their user-signing key; any
// other signature is a failure.
func (s *Server) uploadSignatures(r *http.Request) (int, any, error) {
	var req map[string]map[string]json.RawMessage
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	ctx := r.Context()
	own, err := s.store.CrossSigningKeys(ctx, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	u := &signatureUpload{signer: c.UserID, failures: map[string]map[string]signatureFailure{}}
	for userID, keys := range req {
		switch {
		case !s.isLocalUser(userID):
			for keyID := range keys {
				u.fail(userID, keyID, "M_UNKNOWN", "Signing keys of remote users is not supported yet")
			}
		case userID == c.UserID:
			if err := s.ownSignatures(ctx, u, own, keys); err != nil {
				return 0, nil, err
			}
		default:
			if err := s.otherUserSignatures(ctx, u, own, userID, keys); err != nil {
				return 0, nil, err
			}
		}
	}
	if len(u.sigs) > 0 {
		positions, err := s.store.PutCrossSigningSignatures(ctx, u.sigs)
		if err != nil {
			return 0, nil, err
		}
		for userID, pos := range positions {
			if err := s.publishDeviceListChange(ctx, userID, pos); err != nil {
				return 0, nil, err
			}
		}
		s.federateSignatures(ctx, u.sigs, positions)
	}
	return http.StatusOK, map[string]any{"failures": u.failures}, nil
}

// ownSignatures checks the caller's signatures of their own devices (by
// the self-signing key) and master key (by their devices).
func (s *Server) ownSignatures(ctx context.Context, u *signatureUpload, own map[string]persistence.CrossSigningKey, keys map[string]json.RawMessage) error {
	devices, err := s.store.DeviceKeys(ctx, u.signer, nil)
	if err != nil {
		return err
	}
	master, hasMaster := own[persistence.CrossSigningMaster]
	masterPub, _, _ := storedPublicKey(master)
	for keyID, signed := range keys {
		if device, ok := devices[keyID]; ok {
			ssk, ok := own[persistence.CrossSigningSelfSigning]
			if !ok {
				u.fail(u.signer, keyID, "M_MISSING_PARAM", "No self-signing key is uploaded")
				continue
			}
			if !sameSignedJSON(signed, device) {
				u.fail(u.signer, keyID, "M_INVALID_SIGNATURE", "The signed object is not the device's keys")
				continue
			}
			_, pub, _ := storedPublicKey(ssk)
			sig, err := u.signatureBy(signed, ssk.KeyID, pub)
			if err != nil {
				u.fail(u.signer, keyID, "M_INVALID_SIGNATURE", "Invalid signature by the self-signing key: "+err.Error())
				continue
			}
			u.sigs = append(u.sigs, persistence.CrossSigningSignature{
				SignerUserID: u.signer, SignerKeyID: ssk.KeyID, TargetUserID: u.signer, TargetKeyID: keyID, Signature: sig,
			})
			continue
		}
		if !hasMaster || keyID != masterPub {
			u.fail(u.signer, keyID, "M_NOT_FOUND", "Unknown device or key")
			continue
		}
		if !sameSignedJSON(signed, master.Key) {
			u.fail(u.signer, keyID, "M_INVALID_SIGNATURE", "The signed object is not the master key")
			continue
		}
		n := len(u.sigs)
		var obj struct {
			Signatures map[string]map[string]string `json:"signatures"`
		}
		_ = json.Unmarshal(signed, &obj)
		var bad string
		for sigKeyID := range obj.Signatures[u.signer] {
			deviceID, ok := strings.CutPrefix(sigKeyID, "ed25519:")
			if !ok || sigKeyID == master.KeyID {
				continue // the master key's own, or not a device's
			}
			pub, ok := deviceSigningKey(devices[deviceID], deviceID)
			if !ok {
				bad = "No device " + deviceID + " with an ed25519 key"
				continue
			}
			sig, err := u.signatureBy(signed, sigKeyID, pub)
			if err != nil {
				bad = "Invalid signature by device " + deviceID + ": " + err.Error()
				continue
			}
			u.sigs = append(u.sigs, persistence.CrossSigningSignature{
				SignerUserID: u.signer, SignerKeyID: sigKeyID, TargetUserID: u.signer, TargetKeyID: keyID, Signature: sig,
			})
		}
		if len(u.sigs) == n {
			if bad == "" {
				bad = "No signature by one of the user's devices"
			}
			u.fail(u.signer, keyID, "M_INVALID_SIGNATURE", bad)
		}
	}
	return nil
}

// deviceSigningKey is the ed25519 key of a device's stored keys.
func deviceSigningKey(keys json.RawMessage, deviceID string) (ed25519.PublicKey, bool) {
	if keys == nil {
		return nil, false
	}
	var h deviceKeysHeader
	if err := json.Unmarshal(keys, &h); err != nil {
		return nil, false
	}
	return decodeEd25519Key(h.Keys["ed25519:"+deviceID])
}

// otherUserSignatures checks the caller's signatures of another local
// user's master key by the caller's user-signing key.
func (s *Server) otherUserSignatures(ctx context.Context, u *signatureUpload, own map[string]persistence.CrossSigningKey, userID string, keys map[string]json.RawMessage) error {
	theirs, err := s.store.CrossSigningKeys(ctx, userID)
	if err != nil {
		return err
	}
	master, hasMaster := theirs[persistence.CrossSigningMaster]
	masterPub, _, _ := storedPublicKey(master)
	usk, hasUSK := own[persistence.CrossSigningUserSigning]
	for keyID, signed := range keys {
		switch {
		case !hasMaster || keyID != masterPub:
			u.fail(userID, keyID, "M_NOT_FOUND", "Unknown master key: only master keys of other users are signed")
		case !hasUSK:
			u.fail(userID, keyID, "M_MISSING_PARAM", "No user-signing key is uploaded")
		case !sameSignedJSON(signed, master.Key):
			u.fail(userID, keyID, "M_INVALID_SIGNATURE", "The signed object is not the user's master key")
		default:
			_, pub, _ := storedPublicKey(usk)
			sig, err := u.signatureBy(signed, usk.KeyID, pub)
			if err != nil {
				u.fail(userID, keyID, "M_INVALID_SIGNATURE", "Invalid signature by the user-signing key: "+err.Error())
				continue
			}
			u.sigs = append(u.sigs, persistence.CrossSigningSignature{
				SignerUserID: u.signer, SignerKeyID: usk.KeyID, TargetUserID: userID, TargetKeyID: keyID, Signature: sig,
			})
		}
	}
	return nil
}
