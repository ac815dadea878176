package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// keysSync is the part of a /sync response the end-to-end encryption test
// reads.
type keysSync struct {
	NextBatch string `json:"next_batch"`
	ToDevice  struct {
		Events []struct {
			Sender  string         `json:"sender"`
			Type    string         `json:"type"`
			Content map[string]any `json:"content"`
		} `json:"events"`
	} `json:"to_device"`
	DeviceLists struct {
		Changed []string `json:"changed"`
	} `json:"device_lists"`
	OneTimeKeysCount       map[string]int `json:"device_one_time_keys_count"`
	UnusedFallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`
}

func (c *client) keysSync(since string, timeoutMS int) keysSync {
	c.t.Helper()
	path := fmt.Sprintf("/_matrix/client/v3/sync?timeout=%d", timeoutMS)
	if since != "" {
		path += "&since=" + since
	}
	var s keysSync
	c.must("GET", path, nil, &s)
	return s
}

// deviceKeys is a device's identity keys as a client uploads them (the
// signature is not checked by servers; clients check it).
func deviceKeys(c *client, deviceID, curve string) map[string]any {
	return map[string]any{
		"user_id": c.userID, "device_id": deviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"curve25519:" + deviceID: curve, "ed25519:" + deviceID: "ed-" + deviceID},
		"signatures": map[string]any{c.userID: map[string]string{"ed25519:" + deviceID: "sig"}},
	}
}

func whoamiDevice(c *client) string {
	c.t.Helper()
	var who struct {
		DeviceID string `json:"device_id"`
	}
	c.must("GET", "/_matrix/client/v3/account/whoami", nil, &who)
	return who.DeviceID
}

// TestEndToEndKeysAndToDevice: a device uploads identity, one-time and
// fallback keys; another user queries and claims them, sends to-device
// messages that wake the device's long poll and are delivered once, and
// learns of key changes through device_lists.changed and /keys/changes.
func TestEndToEndKeysAndToDevice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob := srv.register("alice"), srv.register("bob")
		aliceDev := whoamiDevice(alice)
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat", "invite": []string{bob.userID}}, &created)
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(created.RoomID), map[string]any{}, nil)

		otks := map[string]any{}
		for i := range 3 {
			otks[fmt.Sprintf("signed_curve25519:K%d", i)] = map[string]any{"key": fmt.Sprintf("otk%d", i), "signatures": map[string]any{}}
		}
		var uploaded struct {
			Counts map[string]int `json:"one_time_key_counts"`
		}
		alice.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{
			"device_keys":   deviceKeys(alice, aliceDev, "curve-1"),
			"one_time_keys": otks,
			"fallback_keys": map[string]any{"signed_curve25519:FB": map[string]any{"key": "fallback", "fallback": true}},
		}, &uploaded)
		if uploaded.Counts["signed_curve25519"] != 3 {
			t.Fatalf("one_time_key_counts = %v, want 3 signed_curve25519", uploaded.Counts)
		}

		var query struct {
			DeviceKeys map[string]map[string]struct {
				Keys     map[string]string `json:"keys"`
				Unsigned map[string]any    `json:"unsigned"`
			} `json:"device_keys"`
		}
		bob.must("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string][]string{alice.userID: {}}}, &query)
		got := query.DeviceKeys[alice.userID][aliceDev]
		if got.Keys["curve25519:"+aliceDev] != "curve-1" {
			t.Fatalf("bob's query of alice's keys = %+v", query.DeviceKeys)
		}

		var claim struct {
			OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
		}
		bob.must("POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{alice.userID: map[string]string{aliceDev: "signed_curve25519"}}}, &claim)
		if keys := claim.OneTimeKeys[alice.userID][aliceDev]; len(keys) != 1 || keys["signed_curve25519:K0"] == nil {
			t.Fatalf("claimed %v, want K0", claim.OneTimeKeys)
		}
		// Without federation, another server's users are failures, by
		// server name, next to the local answers.
		var remote struct {
			Failures map[string]any `json:"failures"`
		}
		bob.must("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string][]string{"@carol:elsewhere.example": {}}}, &remote)
		if _, ok := remote.Failures["elsewhere.example"]; !ok || len(remote.Failures) != 1 {
			t.Fatalf("query of a remote user without federation: failures %v", remote.Failures)
		}
		remote.Failures = nil
		bob.must("POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{"@carol:elsewhere.example": map[string]string{"D": "signed_curve25519"}}}, &remote)
		if _, ok := remote.Failures["elsewhere.example"]; !ok || len(remote.Failures) != 1 {
			t.Fatalf("claim of a remote user's key without federation: failures %v", remote.Failures)
		}
		base := alice.keysSync("", 0)
		if base.OneTimeKeysCount["signed_curve25519"] != 2 || len(base.UnusedFallbackKeyTypes) != 1 {
			t.Fatalf("alice's sync: counts %v, unused fallbacks %v; want 2 and [signed_curve25519]", base.OneTimeKeysCount, base.UnusedFallbackKeyTypes)
		}

		// Bob's to-device message wakes Alice's long poll, once.
		woke := make(chan keysSync, 1)
		start := time.Now()
		go func() { woke <- alice.keysSync(base.NextBatch, 45000) }()
		time.Sleep(200 * time.Millisecond) // let the long poll register
		bob.must("PUT", "/_matrix/client/v3/sendToDevice/m.room_key_request/txn1", map[string]any{
			"messages": map[string]any{alice.userID: map[string]any{aliceDev: map[string]any{"n": 1}, "*": map[string]any{"n": 2}}},
		}, nil)
		// The same transaction again sends nothing more.
		bob.must("PUT", "/_matrix/client/v3/sendToDevice/m.room_key_request/txn1", map[string]any{
			"messages": map[string]any{alice.userID: map[string]any{aliceDev: map[string]any{"n": 1}}},
		}, nil)
		msgs := <-woke
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("a to-device message did not wake the long poll (returned after %v)", d)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(msgs.ToDevice.Events) < 2 && time.Now().Before(deadline) {
			more := alice.keysSync(msgs.NextBatch, 2000)
			more.ToDevice.Events = append(msgs.ToDevice.Events, more.ToDevice.Events...)
			msgs = more
		}
		if len(msgs.ToDevice.Events) != 2 || msgs.ToDevice.Events[0].Sender != bob.userID || msgs.ToDevice.Events[0].Type != "m.room_key_request" {
			t.Fatalf("alice's to-device events = %+v, want bob's two", msgs.ToDevice.Events)
		}
		if again := alice.keysSync(msgs.NextBatch, 0); len(again.ToDevice.Events) != 0 {
			t.Fatalf("acknowledged to-device messages came again: %+v", again.ToDevice.Events)
		}

		// Alice's new keys reach Bob through device_lists.changed.
		bobBase := bob.keysSync("", 0)
		alice.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": deviceKeys(alice, aliceDev, "curve-2")}, nil)
		changed := bob.keysSync(bobBase.NextBatch, 10000)
		if len(changed.DeviceLists.Changed) != 1 || changed.DeviceLists.Changed[0] != alice.userID {
			t.Fatalf("bob's device_lists.changed = %v, want alice", changed.DeviceLists.Changed)
		}
		var changes struct {
			Changed []string `json:"changed"`
		}
		bob.must("GET", "/_matrix/client/v3/keys/changes?from="+bobBase.NextBatch+"&to="+changed.NextBatch, nil, &changes)
		if len(changes.Changed) != 1 || changes.Changed[0] != alice.userID {
			t.Fatalf("/keys/changes = %v, want alice", changes.Changed)
		}

		// A second device of Alice's with keys logs out: its keys go, and
		// Bob learns that Alice's device list changed.
		phone := srv.login("alice")
		phoneDev := whoamiDevice(phone)
		phone.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": deviceKeys(phone, phoneDev, "curve-phone")}, nil)
		beforeLogout := bob.keysSync(changed.NextBatch, 10000)
		phone.must("POST", "/_matrix/client/v3/logout", map[string]any{}, nil)
		afterLogout := bob.keysSync(beforeLogout.NextBatch, 10000)
		if len(afterLogout.DeviceLists.Changed) != 1 || afterLogout.DeviceLists.Changed[0] != alice.userID {
			t.Fatalf("after alice's phone logged out bob's device_lists.changed = %v, want alice", afterLogout.DeviceLists.Changed)
		}
		query.DeviceKeys = nil
		bob.must("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string][]string{alice.userID: {}}}, &query)
		if _, ok := query.DeviceKeys[alice.userID][phoneDev]; ok || len(query.DeviceKeys[alice.userID]) != 1 {
			t.Fatalf("after logout alice's devices with keys = %v, want only %s", query.DeviceKeys[alice.userID], aliceDev)
		}

		for _, c := range []struct {
			method, path string
			body         any
			status       int
			code         string
		}{
			{"POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": deviceKeys(alice, "OTHERDEV", "x")}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"POST", "/_matrix/client/v3/keys/upload", map[string]any{"one_time_keys": map[string]any{"no-colon": "k"}}, http.StatusBadRequest, "M_BAD_JSON"},
			{"POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": []string{"x"}}, http.StatusBadRequest, "M_BAD_JSON"},
			{"GET", "/_matrix/client/v3/keys/changes?from=s1", nil, http.StatusBadRequest, "M_MISSING_PARAM"},
			{"PUT", "/_matrix/client/v3/sendToDevice/m.x/t2", map[string]any{"messages": map[string]any{alice.userID: map[string]any{aliceDev: "not an object"}}}, http.StatusBadRequest, "M_BAD_JSON"},
		} {
			var e struct {
				Errcode string `json:"errcode"`
			}
			if got := alice.do(c.method, c.path, c.body, &e); got != c.status || e.Errcode != c.code {
				t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, got, e.Errcode, c.status, c.code)
			}
		}
	})
}

// TestOwnDeviceListChangeFromFirstToken: on a fresh server the first
// user's initial sync returns a token at stream position 0 (nothing was
// written yet); a sync from that token is incremental all the same, and
// shows the user's own key upload in device_lists.changed. (matrix-js-sdk's
// Rust crypto waits for it to see its new cross-signing signatures.)
func TestOwnDeviceListChangeFromFirstToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		alice := srv.register("alice")
		since := alice.keysSync("", 0).NextBatch
		alice.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": deviceKeys(alice, whoamiDevice(alice), "curve-a")}, nil)
		if s := alice.keysSync(since, 5000); !slices.Contains(s.DeviceLists.Changed, alice.userID) {
			t.Fatalf("sync since %s after alice uploaded her device keys: device_lists.changed = %v, want alice", since, s.DeviceLists.Changed)
		}
	})
}
