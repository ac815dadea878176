package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
)

// verifySigned checks userID's signature by keyID (an ed25519 public key,
// unpadded base64) on a signed object as it came over the wire.
func verifySigned(t *testing.T, what string, raw json.RawMessage, userID, keyID, pub string) {
	t.Helper()
	key, ok := decodeKey(pub)
	if !ok {
		t.Fatalf("%s: bad public key %q", what, pub)
	}
	if err := gomatrixserverlib.VerifyJSON(userID, gomatrixserverlib.KeyID(keyID), key, raw); err != nil {
		t.Fatalf("%s: signature %s of %s does not verify: %v\n%s", what, keyID, userID, err, raw)
	}
}

func decodeKey(pub string) (ed25519.PublicKey, bool) {
	k, err := base64.RawStdEncoding.DecodeString(pub)
	return k, err == nil && len(k) == ed25519.PublicKeySize
}

// TestFederationUserKeysAndDirectory: a user on A (SQLite) publishes
// device, one-time, fallback and cross-signing keys and a public room with
// an alias; a user on B (PostgreSQL) queries and claims the keys through
// B (signatures intact, a one-time key handed out once), resolves the
// alias and lists A's public rooms. The inbound endpoints refuse unknown
// users, other servers' users and bad JSON.
func TestFederationUserKeysAndDirectory(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	backends := backendsUnderTest()
	a := startFedServer(t, backends[0], "SOMA_RATE_LIMITS_ENABLED=false")
	b := startFedServer(t, backends[1], "SOMA_RATE_LIMITS_ENABLED=false")
	aKey, bKey := a.signingKey(t), b.signingKey(t)

	alice, bob := a.register("alice"), b.register("bob")
	aliceDev := whoamiDevice(alice)
	alice.must("PUT", "/_matrix/client/v3/devices/"+aliceDev, map[string]any{"display_name": "Alice's phone"}, nil)
	devKey, master, ssk, usk := newSigningKey(t), newSigningKey(t), newSigningKey(t), newSigningKey(t)
	otk := signed(t, map[string]any{"key": "one-time-curve"}, alice.userID, "ed25519:"+aliceDev, devKey)
	fallback := signed(t, map[string]any{"key": "fallback-curve", "fallback": true}, alice.userID, "ed25519:"+aliceDev, devKey)
	alice.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{
		"device_keys":   realDeviceKeys(t, alice, aliceDev, devKey),
		"one_time_keys": map[string]any{"signed_curve25519:OTK1": otk},
		"fallback_keys": map[string]any{"signed_curve25519:FB1": fallback},
	}, nil)
	alice.must("POST", "/_matrix/client/v3/keys/device_signing/upload", map[string]any{
		"master_key":       crossSigningKey(t, alice.userID, "master", master, master),
		"self_signing_key": crossSigningKey(t, alice.userID, "self_signing", ssk, master),
		"user_signing_key": crossSigningKey(t, alice.userID, "user_signing", usk, master),
	}, nil)
	// Her self-signing key signs her device: the signature is merged into
	// the device's keys on the way out.
	alice.must("POST", "/_matrix/client/v3/keys/signatures/upload", map[string]any{
		alice.userID: map[string]any{aliceDev: signed(t, realDeviceKeys(t, alice, aliceDev, devKey), alice.userID, "ed25519:"+ssk.pub, ssk)},
	}, nil)

	t.Run("bob on B queries alice's keys on A", func(t *testing.T) {
		var q struct {
			DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
			MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
			SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
			UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
			Failures        map[string]any                        `json:"failures"`
		}
		bob.must("POST", "/_matrix/client/v3/keys/query", map[string]any{
			"device_keys": map[string][]string{alice.userID: {}, "@carol:127.0.0.1:1": {}}, "timeout": 20000,
		}, &q)
		dev := q.DeviceKeys[alice.userID][aliceDev]
		if dev == nil {
			t.Fatalf("no keys of alice's device: %+v", q)
		}
		verifySigned(t, "device keys", dev, alice.userID, "ed25519:"+aliceDev, devKey.pub)
		verifySigned(t, "device keys", dev, alice.userID, "ed25519:"+ssk.pub, ssk.pub)
		var unsigned struct {
			Unsigned struct {
				Name string `json:"device_display_name"`
			} `json:"unsigned"`
		}
		if json.Unmarshal(dev, &unsigned); unsigned.Unsigned.Name != "Alice's phone" {
			t.Fatalf("device keys without the display name: %s", dev)
		}
		if q.MasterKeys[alice.userID] == nil || q.SelfSigningKeys[alice.userID] == nil {
			t.Fatalf("alice's cross-signing keys are missing: %+v", q)
		}
		verifySigned(t, "self-signing key", q.SelfSigningKeys[alice.userID], alice.userID, "ed25519:"+master.pub, master.pub)
		if len(q.UserSigningKeys) != 0 {
			t.Fatalf("alice's user-signing key reached bob: %s", q.UserSigningKeys)
		}
		if _, ok := q.Failures["127.0.0.1:1"]; !ok || len(q.Failures) != 1 {
			t.Fatalf("failures = %v, want the unreachable server only", q.Failures)
		}
	})

	t.Run("bob claims alice's one-time key once, then her fallback key", func(t *testing.T) {
		claim := func() map[string]json.RawMessage {
			t.Helper()
			var c struct {
				OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
				Failures    map[string]any                                   `json:"failures"`
			}
			bob.must("POST", "/_matrix/client/v3/keys/claim", map[string]any{
				"one_time_keys": map[string]any{alice.userID: map[string]string{aliceDev: "signed_curve25519"}}, "timeout": 20000,
			}, &c)
			if len(c.Failures) != 0 {
				t.Fatalf("claim failures: %v", c.Failures)
			}
			return c.OneTimeKeys[alice.userID][aliceDev]
		}
		first := claim()
		if len(first) != 1 || first["signed_curve25519:OTK1"] == nil {
			t.Fatalf("first claim = %s, want OTK1", first)
		}
		verifySigned(t, "one-time key", first["signed_curve25519:OTK1"], alice.userID, "ed25519:"+aliceDev, devKey.pub)
		second := claim()
		if len(second) != 1 || second["signed_curve25519:FB1"] == nil {
			t.Fatalf("second claim = %s, want the fallback key FB1 (OTK1 is gone)", second)
		}
	})

	var roomID string
	t.Run("bob resolves an alias on A and lists A's public rooms", func(t *testing.T) {
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{
			"room_alias_name": "lounge", "visibility": "public", "preset": "public_chat", "name": "The Lounge",
		}, &created)
		roomID = created.RoomID
		alias := "#lounge:" + string(a.name)
		var dir struct {
			RoomID  string   `json:"room_id"`
			Servers []string `json:"servers"`
		}
		bob.must("GET", "/_matrix/client/v3/directory/room/"+url.PathEscape(alias), nil, &dir)
		if dir.RoomID != roomID || len(dir.Servers) == 0 || dir.Servers[0] != string(a.name) {
			t.Fatalf("alias on A resolved to %+v, want %s via %s", dir, roomID, a.name)
		}
		bob.wantError("GET", "/_matrix/client/v3/directory/room/"+url.PathEscape("#nothing:"+string(a.name)), nil, http.StatusNotFound, "M_NOT_FOUND")

		var list struct {
			Chunk []struct {
				RoomID string `json:"room_id"`
				Name   string `json:"name"`
				Alias  string `json:"canonical_alias"`
				Joined int    `json:"num_joined_members"`
			} `json:"chunk"`
			Total int `json:"total_room_count_estimate"`
		}
		b.anonymous().must("GET", "/_matrix/client/v3/publicRooms?server="+url.QueryEscape(string(a.name)), nil, &list)
		if len(list.Chunk) != 1 || list.Chunk[0].RoomID != roomID || list.Chunk[0].Name != "The Lounge" || list.Chunk[0].Alias != alias || list.Chunk[0].Joined != 1 {
			t.Fatalf("A's public rooms through B = %+v", list)
		}
		list.Chunk = nil
		bob.must("POST", "/_matrix/client/v3/publicRooms?server="+url.QueryEscape(string(a.name)), map[string]any{
			"filter": map[string]any{"generic_search_term": "lounge"}, "limit": 5,
		}, &list)
		if len(list.Chunk) != 1 || list.Chunk[0].RoomID != roomID {
			t.Fatalf("A's public rooms matching lounge = %+v", list)
		}
		list.Chunk = nil
		bob.must("POST", "/_matrix/client/v3/publicRooms?server="+url.QueryEscape(string(a.name)), map[string]any{
			"filter": map[string]any{"generic_search_term": "no such room"},
		}, &list)
		if len(list.Chunk) != 0 {
			t.Fatalf("A's public rooms matching nothing = %+v", list)
		}
		bob.wantError("GET", "/_matrix/client/v3/publicRooms?server=127.0.0.1:1", nil, http.StatusBadGateway, "M_UNKNOWN")
	})

	t.Run("bob joins through the alias; the alias then names B too", func(t *testing.T) {
		alias := "#lounge:" + string(a.name)
		var joined struct {
			RoomID string `json:"room_id"`
		}
		bob.must("POST", "/_matrix/client/v3/join/"+url.PathEscape(alias), map[string]any{}, &joined)
		if joined.RoomID != roomID {
			t.Fatalf("joined %q through %s, want %s", joined.RoomID, alias, roomID)
		}
		var dir struct {
			RoomID  string   `json:"room_id"`
			Servers []string `json:"servers"`
		}
		bob.must("GET", "/_matrix/client/v3/directory/room/"+url.PathEscape(alias), nil, &dir)
		if dir.RoomID != roomID || len(dir.Servers) != 2 || dir.Servers[0] != string(a.name) || dir.Servers[1] != string(b.name) {
			t.Fatalf("alias after bob's join: %+v, want servers [%s %s]", dir, a.name, b.name)
		}
	})

	t.Run("A serves its users' devices to B", func(t *testing.T) {
		code, body := fedDo(t, signedRequest(t, a.fedURL, "GET", b.name, a.name, bKey, "/_matrix/federation/v1/user/devices/"+url.PathEscape(alice.userID), nil))
		devices, _ := body["devices"].([]any)
		streamID, _ := body["stream_id"].(float64)
		if code != 200 || body["user_id"] != alice.userID || streamID <= 0 || len(devices) != 1 || body["master_key"] == nil || body["self_signing_key"] == nil {
			t.Fatalf("alice's devices: %d %v", code, body)
		}
		d, _ := devices[0].(map[string]any)
		if d["device_id"] != aliceDev || d["device_display_name"] != "Alice's phone" || d["keys"] == nil {
			t.Fatalf("alice's device: %v", d)
		}
		if _, leaked := body["user_signing_key"]; leaked {
			t.Fatalf("the user-signing key reached another server: %v", body)
		}
	})

	t.Run("the inbound endpoints refuse what is not theirs to answer", func(t *testing.T) {
		for _, c := range []struct {
			name, method, uri string
			content           any
			status            int
			errcode           string
		}{
			{"devices of an unknown user", "GET", "/_matrix/federation/v1/user/devices/" + url.PathEscape("@nobody:"+string(a.name)), nil, 404, "M_NOT_FOUND"},
			{"devices of another server's user", "GET", "/_matrix/federation/v1/user/devices/" + url.PathEscape(bob.userID), nil, 400, "M_INVALID_PARAM"},
			{"devices of a non-user", "GET", "/_matrix/federation/v1/user/devices/alice", nil, 400, "M_INVALID_PARAM"},
			{"keys of another server's user", "POST", "/_matrix/federation/v1/user/keys/query", map[string]any{"device_keys": map[string][]string{bob.userID: {}}}, 400, "M_INVALID_PARAM"},
			{"claim of another server's user", "POST", "/_matrix/federation/v1/user/keys/claim", map[string]any{"one_time_keys": map[string]any{bob.userID: map[string]string{"D": "signed_curve25519"}}}, 400, "M_INVALID_PARAM"},
			{"query of the wrong shape", "POST", "/_matrix/federation/v1/user/keys/query", map[string]any{"device_keys": []string{alice.userID}}, 400, "M_BAD_JSON"},
			{"claim without one_time_keys", "POST", "/_matrix/federation/v1/user/keys/claim", map[string]any{}, 400, "M_BAD_JSON"},
			{"alias of another server", "GET", "/_matrix/federation/v1/query/directory?room_alias=" + url.QueryEscape("#lounge:"+string(b.name)), nil, 400, "M_INVALID_PARAM"},
			{"unknown alias", "GET", "/_matrix/federation/v1/query/directory?room_alias=" + url.QueryEscape("#nothing:"+string(a.name)), nil, 404, "M_NOT_FOUND"},
			{"no alias", "GET", "/_matrix/federation/v1/query/directory", nil, 400, "M_MISSING_PARAM"},
			{"public rooms from a bad token", "GET", "/_matrix/federation/v1/publicRooms?since=nonsense", nil, 400, "M_INVALID_PARAM"},
			{"public rooms with a bad filter", "POST", "/_matrix/federation/v1/publicRooms", map[string]any{"filter": "lounge"}, 400, "M_BAD_JSON"},
		} {
			code, body := fedDo(t, signedRequest(t, a.fedURL, c.method, b.name, a.name, bKey, c.uri, c.content))
			if code != c.status || body["errcode"] != c.errcode {
				t.Errorf("%s: %d %v, want %d %s", c.name, code, body, c.status, c.errcode)
			}
		}
		// A body that is not JSON cannot have been signed.
		req := signedRequest(t, a.fedURL, "POST", b.name, a.name, bKey, "/_matrix/federation/v1/user/keys/query", map[string]any{"device_keys": map[string]any{}})
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader("{not json")), int64(len("{not json"))
		if code, body := fedDo(t, req); code != 400 || body["errcode"] != "M_NOT_JSON" {
			t.Errorf("not JSON: %d %v", code, body)
		}
		// Unsigned: refused before anything is read.
		unsigned, _ := http.NewRequest("POST", a.fedURL+"/_matrix/federation/v1/user/keys/claim", strings.NewReader(`{"one_time_keys":{}}`))
		if code, body := fedDo(t, unsigned); code != 401 || body["errcode"] != "M_UNAUTHORIZED" {
			t.Errorf("unsigned claim: %d %v", code, body)
		}
		// And B answers A the same way: A's key signs for A only.
		code, body := fedDo(t, signedRequest(t, b.fedURL, "GET", a.name, b.name, aKey, "/_matrix/federation/v1/user/devices/"+url.PathEscape(bob.userID), nil))
		if devices, ok := body["devices"].([]any); code != 200 || !ok || len(devices) != 0 || body["user_id"] != bob.userID {
			t.Errorf("bob's devices (none with keys): %d %v", code, body)
		}
	})

	t.Run("alice on A lists B's public rooms: none", func(t *testing.T) {
		var list struct {
			Chunk []any `json:"chunk"`
		}
		alice.must("GET", "/_matrix/client/v3/publicRooms?server="+url.QueryEscape(string(b.name)), nil, &list)
		if list.Chunk == nil || len(list.Chunk) != 0 {
			t.Fatalf("B's public rooms = %+v, want an empty chunk", list)
		}
	})
}
