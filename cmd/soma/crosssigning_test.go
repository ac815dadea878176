package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
)

// signingKey is an ed25519 key pair of a test client.
type signingKey struct {
	pub  string // unpadded base64
	priv ed25519.PrivateKey
}

func newSigningKey(t *testing.T) signingKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{pub: base64.RawStdEncoding.EncodeToString(pub), priv: priv}
}

// signed returns obj signed by userID's key keyID.
func signed(t *testing.T, obj map[string]any, userID, keyID string, key signingKey) map[string]any {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	out, err := gomatrixserverlib.SignJSON(userID, gomatrixserverlib.KeyID(keyID), key.priv, raw)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// crossSigningKey is a cross-signing key object for usage, signed by the
// master key unless it is the master key.
func crossSigningKey(t *testing.T, userID, usage string, key, master signingKey) map[string]any {
	obj := map[string]any{"user_id": userID, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + key.pub: key.pub}}
	if usage == "master" {
		return obj
	}
	return signed(t, obj, userID, "ed25519:"+master.pub, master)
}

// realDeviceKeys are a device's identity keys with a real ed25519 key,
// self-signed.
func realDeviceKeys(t *testing.T, c *client, deviceID string, key signingKey) map[string]any {
	return signed(t, map[string]any{
		"user_id": c.userID, "device_id": deviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"curve25519:" + deviceID: "curve-" + deviceID, "ed25519:" + deviceID: key.pub},
	}, c.userID, "ed25519:"+deviceID, key)
}

// keysQuery is the part of a POST /keys/query answer these tests read.
type keysQuery struct {
	DeviceKeys      map[string]map[string]signedObject `json:"device_keys"`
	MasterKeys      map[string]signedObject            `json:"master_keys"`
	SelfSigningKeys map[string]signedObject            `json:"self_signing_keys"`
	UserSigningKeys map[string]signedObject            `json:"user_signing_keys"`
}

type signedObject struct {
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

func (c *client) queryKeys(users ...string) keysQuery {
	c.t.Helper()
	req := map[string][]string{}
	for _, u := range users {
		req[u] = []string{}
	}
	var q keysQuery
	c.must("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": req}, &q)
	return q
}

// waitForDeviceListChange syncs from since until device_lists.changed
// names userID, and returns the next batch.
func (c *client) waitForDeviceListChange(since, userID string) string {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s := c.keysSync(since, 5000)
		if slices.Contains(s.DeviceLists.Changed, userID) {
			return s.NextBatch
		}
		since = s.NextBatch
	}
	c.t.Fatalf("%s's sync never listed %s in device_lists.changed", c.userID, userID)
	return ""
}

type csError struct {
	ErrCode        string `json:"errcode"`
	CurrentVersion string `json:"current_version"`
	Flows          []struct {
		Stages []string `json:"stages"`
	} `json:"flows"`
	Session string `json:"session"`
}

// TestCrossSigning: uploading cross-signing keys needs no
// user-interactive auth for the first master key and m.login.password
// after; signatures of one's devices, one's master key and others' master
// keys are kept and merged into /keys/query (failures reported per key);
// each change reaches others' device_lists.changed.
func TestCrossSigning(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob := srv.register("alice"), srv.register("bob")
		aliceDev, bobDev := whoamiDevice(alice), whoamiDevice(bob)
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat", "invite": []string{bob.userID}}, &created)
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(created.RoomID), map[string]any{}, nil)
		aliceDevKey, bobDevKey := newSigningKey(t), newSigningKey(t)
		alice.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": realDeviceKeys(t, alice, aliceDev, aliceDevKey)}, nil)
		bob.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": realDeviceKeys(t, bob, bobDev, bobDevKey)}, nil)
		since := bob.keysSync("", 0).NextBatch

		// The first master key needs no user-interactive auth.
		master, ssk, usk := newSigningKey(t), newSigningKey(t), newSigningKey(t)
		upload := map[string]any{
			"master_key":       crossSigningKey(t, alice.userID, "master", master, master),
			"self_signing_key": crossSigningKey(t, alice.userID, "self_signing", ssk, master),
			"user_signing_key": crossSigningKey(t, alice.userID, "user_signing", usk, master),
		}
		alice.must("POST", "/_matrix/client/v3/keys/device_signing/upload", upload, nil)
		since = bob.waitForDeviceListChange(since, alice.userID)

		q := alice.queryKeys(alice.userID)
		if q.MasterKeys[alice.userID].Keys["ed25519:"+master.pub] != master.pub ||
			q.SelfSigningKeys[alice.userID].Keys["ed25519:"+ssk.pub] != ssk.pub ||
			q.UserSigningKeys[alice.userID].Keys["ed25519:"+usk.pub] != usk.pub {
			t.Fatalf("alice's query of her keys = %+v", q)
		}
		q = bob.queryKeys(alice.userID)
		if q.MasterKeys[alice.userID].Keys == nil || q.SelfSigningKeys[alice.userID].Keys == nil || len(q.UserSigningKeys) != 0 {
			t.Fatalf("bob's query of alice's keys = %+v, want her master and self-signing keys only", q)
		}

		// The same keys again change nothing and need no auth.
		alice.must("POST", "/_matrix/client/v3/keys/device_signing/upload", upload, nil)
		// A self-signing key signed by another key is refused.
		other := newSigningKey(t)
		var e csError
		if code := alice.do("POST", "/_matrix/client/v3/keys/device_signing/upload", map[string]any{
			"self_signing_key": crossSigningKey(t, alice.userID, "self_signing", newSigningKey(t), other),
		}, &e); code != http.StatusBadRequest || e.ErrCode != "M_INVALID_SIGNATURE" {
			t.Fatalf("a badly signed self-signing key: %d %+v", code, e)
		}
		// Replacing a key now takes the password.
		ssk2 := newSigningKey(t)
		replace := map[string]any{"self_signing_key": crossSigningKey(t, alice.userID, "self_signing", ssk2, master)}
		e = csError{}
		if code := alice.do("POST", "/_matrix/client/v3/keys/device_signing/upload", replace, &e); code != http.StatusUnauthorized ||
			len(e.Flows) != 1 || !slices.Equal(e.Flows[0].Stages, []string{"m.login.password"}) || e.Session == "" {
			t.Fatalf("replacing a key without auth: %d %+v, want a 401 m.login.password challenge", code, e)
		}
		replace["auth"] = map[string]any{
			"type": "m.login.password", "session": e.Session, "password": "correct horse alice",
			"identifier": map[string]any{"type": "m.id.user", "user": "alice"},
		}
		alice.must("POST", "/_matrix/client/v3/keys/device_signing/upload", replace, nil)
		if q := bob.queryKeys(alice.userID); q.SelfSigningKeys[alice.userID].Keys["ed25519:"+ssk2.pub] != ssk2.pub {
			t.Fatalf("after the replacement: %+v", q.SelfSigningKeys)
		}
		since = bob.waitForDeviceListChange(since, alice.userID)
		ssk = ssk2

		// Bob publishes his master key; alice signs her device (self-
		// signing key), her master key (her device) and bob's master key
		// (user-signing key), with a bad and an unknown one among them.
		bobMaster := newSigningKey(t)
		bobMasterKey := crossSigningKey(t, bob.userID, "master", bobMaster, bobMaster)
		bob.must("POST", "/_matrix/client/v3/keys/device_signing/upload", map[string]any{"master_key": bobMasterKey}, nil)
		aliceSince := alice.keysSync("", 0).NextBatch
		since = bob.keysSync(since, 0).NextBatch
		var res struct {
			Failures map[string]map[string]struct {
				ErrCode string `json:"errcode"`
			} `json:"failures"`
		}
		alice.must("POST", "/_matrix/client/v3/keys/signatures/upload", map[string]any{
			alice.userID: map[string]any{
				aliceDev:   signed(t, realDeviceKeys(t, alice, aliceDev, aliceDevKey), alice.userID, "ed25519:"+ssk.pub, ssk),
				"NOPE":     signed(t, realDeviceKeys(t, alice, "NOPE", aliceDevKey), alice.userID, "ed25519:"+ssk.pub, ssk),
				master.pub: signed(t, crossSigningKey(t, alice.userID, "master", master, master), alice.userID, "ed25519:"+aliceDev, aliceDevKey),
			},
			bob.userID: map[string]any{
				bobMaster.pub: signed(t, bobMasterKey, alice.userID, "ed25519:"+usk.pub, usk),
			},
		}, &res)
		if len(res.Failures) != 1 || len(res.Failures[alice.userID]) != 1 || res.Failures[alice.userID]["NOPE"].ErrCode != "M_NOT_FOUND" {
			t.Fatalf("failures = %+v, want only the unknown device NOPE", res.Failures)
		}
		// A signature by the wrong key fails with M_INVALID_SIGNATURE.
		alice.must("POST", "/_matrix/client/v3/keys/signatures/upload", map[string]any{
			alice.userID: map[string]any{aliceDev: signed(t, realDeviceKeys(t, alice, aliceDev, aliceDevKey), alice.userID, "ed25519:"+ssk.pub, other)},
		}, &res)
		if res.Failures[alice.userID][aliceDev].ErrCode != "M_INVALID_SIGNATURE" {
			t.Fatalf("failures for a forged signature = %+v", res.Failures)
		}
		bob.waitForDeviceListChange(since, alice.userID)
		alice.waitForDeviceListChange(aliceSince, bob.userID)

		q = bob.queryKeys(alice.userID, bob.userID)
		if sigs := q.DeviceKeys[alice.userID][aliceDev].Signatures[alice.userID]; sigs["ed25519:"+ssk.pub] == "" || sigs["ed25519:"+aliceDev] == "" {
			t.Fatalf("alice's device signatures = %v, want her own and her self-signing key's", sigs)
		}
		if sigs := q.MasterKeys[alice.userID].Signatures[alice.userID]; sigs["ed25519:"+aliceDev] == "" {
			t.Fatalf("alice's master key signatures = %v, want her device's", sigs)
		}
		if sigs := q.MasterKeys[bob.userID].Signatures[alice.userID]; len(sigs) != 0 {
			t.Fatalf("bob sees alice's signature of his master key: %v; only alice may", sigs)
		}
		q = alice.queryKeys(bob.userID)
		if sigs := q.MasterKeys[bob.userID].Signatures[alice.userID]; sigs["ed25519:"+usk.pub] == "" {
			t.Fatalf("alice's view of bob's master key signatures = %v, want her user-signing key's", q.MasterKeys[bob.userID].Signatures)
		}
		// The merged signature verifies over the device keys as served.
		var raw struct {
			DeviceKeys map[string]map[string]json.RawMessage `json:"device_keys"`
		}
		bob.must("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string][]string{alice.userID: {}}}, &raw)
		if err := gomatrixserverlib.VerifyJSON(alice.userID, gomatrixserverlib.KeyID("ed25519:"+ssk.pub), mustDecode(t, ssk.pub),
			raw.DeviceKeys[alice.userID][aliceDev]); err != nil {
			t.Fatalf("alice's device keys as served do not verify with her self-signing key: %v", err)
		}
	})
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyBackup: a backup version's life (create, read, update, delete),
// room keys stored at each level of /room_keys/keys with the better key
// of a session kept, etag and count, and M_WRONG_ROOM_KEYS_VERSION for a
// version that is not the current one.
func TestKeyBackup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice := srv.register("alice")
		const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
		var e csError
		if code := alice.do("GET", "/_matrix/client/v3/room_keys/version", nil, &e); code != http.StatusNotFound || e.ErrCode != "M_NOT_FOUND" {
			t.Fatalf("current version without any: %d %+v", code, e)
		}
		var created struct {
			Version string `json:"version"`
		}
		alice.must("POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "pk1"}}, &created)
		v1 := created.Version
		type versionInfo struct {
			Algorithm string         `json:"algorithm"`
			AuthData  map[string]any `json:"auth_data"`
			Count     int            `json:"count"`
			Etag      string         `json:"etag"`
			Version   string         `json:"version"`
		}
		var info versionInfo
		alice.must("GET", "/_matrix/client/v3/room_keys/version", nil, &info)
		if info.Version != v1 || info.Algorithm != alg || info.AuthData["public_key"] != "pk1" || info.Count != 0 || info.Etag == "" {
			t.Fatalf("current version = %+v", info)
		}

		const room = "!room:test.local"
		keyPath := func(version, path string) string {
			return "/_matrix/client/v3/room_keys/keys" + path + "?version=" + url.QueryEscape(version)
		}
		sessionPath := "/" + url.PathEscape(room) + "/s1"
		data := func(verified bool, index, forwarded int, tag string) map[string]any {
			return map[string]any{"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
				"session_data": map[string]any{"ciphertext": tag}}
		}
		type update struct {
			Etag  string `json:"etag"`
			Count int    `json:"count"`
		}
		var u update
		alice.must("PUT", keyPath(v1, sessionPath), data(false, 3, 1, "first"), &u)
		if u.Count != 1 || u.Etag == info.Etag {
			t.Fatalf("after the first key: %+v (etag before %q)", u, info.Etag)
		}
		etag := u.Etag
		stored := func() string {
			var d struct {
				SessionData map[string]string `json:"session_data"`
			}
			alice.must("GET", keyPath(v1, sessionPath), nil, &d)
			return d.SessionData["ciphertext"]
		}
		for _, tc := range []struct {
			key  map[string]any
			kept string
		}{
			{data(false, 5, 0, "later index"), "first"},
			{data(false, 3, 2, "more forwarded"), "first"},
			{data(false, 3, 0, "less forwarded"), "less forwarded"},
			{data(false, 1, 5, "lower index"), "lower index"},
			{data(true, 9, 9, "verified"), "verified"},
			{data(false, 0, 0, "unverified"), "verified"},
		} {
			alice.must("PUT", keyPath(v1, sessionPath), tc.key, &u)
			if got := stored(); got != tc.kept {
				t.Fatalf("after uploading %q the backup holds %q, want %q", tc.key["session_data"], got, tc.kept)
			}
			if changed := u.Etag != etag; changed != (tc.kept == tc.key["session_data"].(map[string]any)["ciphertext"]) || u.Count != 1 {
				t.Fatalf("uploading %q: etag %q after %q, count %d", tc.key["session_data"], u.Etag, etag, u.Count)
			}
			etag = u.Etag
		}
		alice.must("PUT", keyPath(v1, "/"+url.PathEscape(room)), map[string]any{"sessions": map[string]any{"s2": data(false, 0, 0, "s2")}}, &u)
		alice.must("PUT", keyPath(v1, ""), map[string]any{"rooms": map[string]any{"!other:test.local": map[string]any{"sessions": map[string]any{"s3": data(false, 0, 0, "s3")}}}}, &u)
		if u.Count != 3 {
			t.Fatalf("count after three sessions = %d", u.Count)
		}
		var all struct {
			Rooms map[string]struct {
				Sessions map[string]json.RawMessage `json:"sessions"`
			} `json:"rooms"`
		}
		alice.must("GET", keyPath(v1, ""), nil, &all)
		if len(all.Rooms) != 2 || len(all.Rooms[room].Sessions) != 2 || len(all.Rooms["!other:test.local"].Sessions) != 1 {
			t.Fatalf("all keys = %+v", all)
		}
		var oneRoom struct {
			Sessions map[string]json.RawMessage `json:"sessions"`
		}
		alice.must("GET", keyPath(v1, "/"+url.PathEscape("!empty:test.local")), nil, &oneRoom)
		if oneRoom.Sessions == nil || len(oneRoom.Sessions) != 0 {
			t.Fatalf("keys of a room without any = %+v, want empty sessions", oneRoom)
		}
		if code := alice.do("GET", keyPath(v1, "/"+url.PathEscape(room)+"/nope"), nil, &e); code != http.StatusNotFound || e.ErrCode != "M_NOT_FOUND" {
			t.Fatalf("an unknown session: %d %+v", code, e)
		}
		if code := alice.do("GET", "/_matrix/client/v3/room_keys/keys", nil, &e); code != http.StatusBadRequest || e.ErrCode != "M_MISSING_PARAM" {
			t.Fatalf("keys without a version: %d %+v", code, e)
		}

		// A new version becomes the current one: the old one is read
		// but not written.
		alice.must("POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "pk2"}}, &created)
		v2 := created.Version
		e = csError{}
		if code := alice.do("PUT", keyPath(v1, sessionPath), data(true, 0, 0, "late"), &e); code != http.StatusForbidden ||
			e.ErrCode != "M_WRONG_ROOM_KEYS_VERSION" || e.CurrentVersion != v2 {
			t.Fatalf("writing the old version: %d %+v, want 403 with current_version %s", code, e, v2)
		}
		if stored() != "verified" {
			t.Fatal("the old version's keys changed")
		}
		alice.must("PUT", keyPath(v2, sessionPath), data(false, 0, 0, "v2"), &u)
		if u.Count != 1 {
			t.Fatalf("the new version's count = %d", u.Count)
		}
		if code := alice.do("PUT", "/_matrix/client/v3/room_keys/version/"+v2, map[string]any{"algorithm": "other", "auth_data": map[string]any{}}, &e); code != http.StatusBadRequest || e.ErrCode != "M_INVALID_PARAM" {
			t.Fatalf("updating with another algorithm: %d %+v", code, e)
		}
		alice.must("PUT", "/_matrix/client/v3/room_keys/version/"+v2, map[string]any{"algorithm": alg, "version": v2, "auth_data": map[string]any{"public_key": "pk2b"}}, nil)
		alice.must("GET", "/_matrix/client/v3/room_keys/version/"+v2, nil, &info)
		if info.AuthData["public_key"] != "pk2b" || info.Count != 1 || info.Version != v2 {
			t.Fatalf("version %s after the update = %+v", v2, info)
		}
		alice.must("DELETE", keyPath(v2, sessionPath), nil, &u)
		if u.Count != 0 || u.Etag == info.Etag {
			t.Fatalf("after deleting the session: %+v (etag before %q)", u, info.Etag)
		}

		// Deleting the current version leaves the older one current.
		alice.must("DELETE", "/_matrix/client/v3/room_keys/version/"+v2, nil, nil)
		alice.must("DELETE", "/_matrix/client/v3/room_keys/version/"+v2, nil, nil)
		if code := alice.do("GET", "/_matrix/client/v3/room_keys/version/"+v2, nil, &e); code != http.StatusNotFound {
			t.Fatalf("a deleted version: %d %+v", code, e)
		}
		if code := alice.do("DELETE", "/_matrix/client/v3/room_keys/version/99", nil, &e); code != http.StatusNotFound || e.ErrCode != "M_NOT_FOUND" {
			t.Fatalf("deleting an unknown version: %d %+v", code, e)
		}
		alice.must("GET", "/_matrix/client/v3/room_keys/version", nil, &info)
		if info.Version != v1 || info.Count != 3 {
			t.Fatalf("current version after deleting %s = %+v", v2, info)
		}
		// Another user sees none of it.
		bob := srv.register("bob")
		if code := bob.do("GET", "/_matrix/client/v3/room_keys/version", nil, &e); code != http.StatusNotFound {
			t.Fatalf("bob's current version: %d %+v", code, e)
		}
	})
}
