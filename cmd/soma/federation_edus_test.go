package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// eduSync is the part of /sync the EDU tests read.
type eduSync struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Ephemeral struct {
				Events []struct {
					Type    string          `json:"type"`
					Content json.RawMessage `json:"content"`
				} `json:"events"`
			} `json:"ephemeral"`
		} `json:"join"`
	} `json:"rooms"`
	Presence struct {
		Events []struct {
			Sender  string         `json:"sender"`
			Content map[string]any `json:"content"`
		} `json:"events"`
	} `json:"presence"`
	ToDevice struct {
		Events []struct {
			Sender  string         `json:"sender"`
			Type    string         `json:"type"`
			Content map[string]any `json:"content"`
		} `json:"events"`
	} `json:"to_device"`
	DeviceLists struct {
		Changed []string `json:"changed"`
	} `json:"device_lists"`
}

// ephemeral returns the content of the room's ephemeral event of type typ
// in s, nil when there is none.
func (s *eduSync) ephemeral(roomID, typ string) json.RawMessage {
	for _, ev := range s.Rooms.Join[roomID].Ephemeral.Events {
		if ev.Type == typ {
			return ev.Content
		}
	}
	return nil
}

// syncUntil syncs as c from since until done says the response has what
// is awaited, and returns the next batch; every response seen is given to
// done. It fails the test after a minute, naming what.
func (c *client) syncUntil(since, what string, done func(s *eduSync) bool) string {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		path := "/_matrix/client/v3/sync?timeout=5000"
		if since != "" {
			path += "&since=" + url.QueryEscape(since)
		}
		var s eduSync
		c.must("GET", path, nil, &s)
		if done(&s) {
			return s.NextBatch
		}
		since = s.NextBatch
	}
	c.t.Fatalf("%s's sync never showed %s", c.userID, what)
	return ""
}

// typingUsers reads an m.typing content.
func typingUsers(content json.RawMessage) []string {
	var c struct {
		UserIDs []string `json:"user_ids"`
	}
	_ = json.Unmarshal(content, &c)
	return c.UserIDs
}

// Typing, receipts, presence, to-device messages, device list and
// cross-signing key updates cross servers as EDUs both ways and reach the
// other server's clients through /sync; a private receipt does not leave
// its server.
func TestFederationEDUs(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	a, b := fastPair(t, "SOMA_RATE_LIMITS_ENABLED=false")
	alice, bob, roomID := publicRoomWithBob(t, a, b)
	aliceSince := alice.sync("", 0).NextBatch
	bobSince := bob.sync("", 0).NextBatch

	// Typing: alice on A, seen by bob on B.
	alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/typing/"+pathEscape(alice.userID), map[string]any{"typing": true, "timeout": 30000}, nil)
	bobSince = bob.syncUntil(bobSince, "alice typing", func(s *eduSync) bool {
		return slices.Contains(typingUsers(s.ephemeral(roomID, "m.typing")), alice.userID)
	})
	alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/typing/"+pathEscape(alice.userID), map[string]any{"typing": false}, nil)
	bobSince = bob.syncUntil(bobSince, "alice no longer typing", func(s *eduSync) bool {
		c := s.ephemeral(roomID, "m.typing")
		return c != nil && !slices.Contains(typingUsers(c), alice.userID)
	})

	// Receipts: bob's private receipt stays on B; his public one reaches A
	// after it (EDUs go in order), so alice never sees the private one.
	first := alice.send(roomID, "r1", "read me privately")
	second := alice.send(roomID, "r2", "read me")
	bobSince = bob.waitForMessage(roomID, bobSince, "read me")
	bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/receipt/m.read.private/"+pathEscape(first), map[string]any{}, nil)
	bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/receipt/m.read/"+pathEscape(second), map[string]any{}, nil)
	aliceSince = alice.syncUntil(aliceSince, "bob's read receipt", func(s *eduSync) bool {
		var c map[string]map[string]map[string]any
		_ = json.Unmarshal(s.ephemeral(roomID, "m.receipt"), &c)
		for eventID, byType := range c {
			if _, ok := byType["m.read.private"][bob.userID]; ok {
				t.Fatalf("alice sees bob's private receipt of %s", eventID)
			}
		}
		return c[second]["m.read"][bob.userID] != nil
	})

	// To-device: alice to one of bob's devices, then to all of them.
	bobDev := whoamiDevice(bob)
	alice.must("PUT", "/_matrix/client/v3/sendToDevice/m.test/td1", map[string]any{
		"messages": map[string]any{bob.userID: map[string]any{bobDev: map[string]any{"n": "one"}}},
	}, nil)
	alice.must("PUT", "/_matrix/client/v3/sendToDevice/m.test/td2", map[string]any{
		"messages": map[string]any{bob.userID: map[string]any{"*": map[string]any{"n": "all"}}},
	}, nil)
	var got []string
	bobSince = bob.syncUntil(bobSince, "alice's to-device messages", func(s *eduSync) bool {
		for _, ev := range s.ToDevice.Events {
			if ev.Sender == alice.userID && ev.Type == "m.test" {
				got = append(got, fmt.Sprint(ev.Content["n"]))
			}
		}
		return len(got) >= 2
	})
	if !slices.Equal(got, []string{"one", "all"}) {
		t.Fatalf("bob's device got %v, want one then all", got)
	}

	// Device lists: bob's new device keys, then his cross-signing keys,
	// put him in alice's device_lists.changed.
	bobDevKey := newSigningKey(t)
	bob.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": realDeviceKeys(t, bob, bobDev, bobDevKey)}, nil)
	aliceSince = alice.syncUntil(aliceSince, "bob's device list change", func(s *eduSync) bool {
		return slices.Contains(s.DeviceLists.Changed, bob.userID)
	})
	// Alice's client then asks for bob's keys, which A asks of B.
	if q := alice.queryKeys(bob.userID); q.DeviceKeys[bob.userID][bobDev].Keys["curve25519:"+bobDev] != "curve-"+bobDev {
		t.Fatalf("alice's query of bob's keys after the change = %+v", q)
	}
	master, ssk := newSigningKey(t), newSigningKey(t)
	bob.must("POST", "/_matrix/client/v3/keys/device_signing/upload", map[string]any{
		"master_key":       crossSigningKey(t, bob.userID, "master", master, master),
		"self_signing_key": crossSigningKey(t, bob.userID, "self_signing", ssk, master),
	}, nil)
	aliceSince = alice.syncUntil(aliceSince, "bob's cross-signing key change", func(s *eduSync) bool {
		return slices.Contains(s.DeviceLists.Changed, bob.userID)
	})
	// Bob signs his device with his self-signing key: a device list update.
	bob.must("POST", "/_matrix/client/v3/keys/signatures/upload", map[string]any{
		bob.userID: map[string]any{bobDev: signed(t, realDeviceKeys(t, bob, bobDev, bobDevKey), bob.userID, "ed25519:"+ssk.pub, ssk)},
	}, nil)
	aliceSince = alice.syncUntil(aliceSince, "bob's signed device", func(s *eduSync) bool {
		return slices.Contains(s.DeviceLists.Changed, bob.userID)
	})
	q := alice.queryKeys(bob.userID)
	if q.DeviceKeys[bob.userID][bobDev].Signatures[bob.userID]["ed25519:"+ssk.pub] == "" || q.MasterKeys[bob.userID].Keys["ed25519:"+master.pub] != master.pub {
		t.Fatalf("alice's query of bob's keys after he cross-signed = %+v", q)
	}
	// And back: alice's new device keys reach bob.
	alice.must("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": deviceKeys(alice, whoamiDevice(alice), "curve-alice")}, nil)
	bobSince = bob.syncUntil(bobSince, "alice's device list change", func(s *eduSync) bool {
		return slices.Contains(s.DeviceLists.Changed, alice.userID)
	})

	// Presence: bob's status on B reaches alice on A.
	bob.must("PUT", "/_matrix/client/v3/presence/"+pathEscape(bob.userID)+"/status", map[string]any{"presence": "online", "status_msg": "on B"}, nil)
	alice.syncUntil(aliceSince, "bob's presence", func(s *eduSync) bool {
		for _, ev := range s.Presence.Events {
			if ev.Sender == bob.userID && ev.Content["status_msg"] == "on B" {
				return true
			}
		}
		return false
	})
}

// A transaction's EDUs that claim users of another server than the
// origin, are malformed or of unknown types are dropped, and the
// transaction is still answered 200; the valid EDUs after them apply.
func TestFederationRefusesForeignEDUs(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	a, b := fastPair(t, "SOMA_RATE_LIMITS_ENABLED=false")
	alice, bob, roomID := publicRoomWithBob(t, a, b)
	bobDev := whoamiDevice(bob)
	since := bob.sync("", 0).NextBatch

	const mallory = "@mallory:elsewhere.example"
	edus := []any{
		map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": roomID, "user_id": mallory, "typing": true}},
		map[string]any{"edu_type": "m.direct_to_device", "content": map[string]any{
			"sender": mallory, "type": "m.forged", "message_id": "f1",
			"messages": map[string]any{bob.userID: map[string]any{"*": map[string]any{"forged": true}}},
		}},
		map[string]any{"edu_type": "m.receipt", "content": map[string]any{roomID: map[string]any{"m.read": map[string]any{
			mallory: map[string]any{"event_ids": []string{"$x"}, "data": map[string]any{"ts": 1}},
		}}}},
		map[string]any{"edu_type": "m.device_list_update", "content": map[string]any{"user_id": mallory, "device_id": "X", "stream_id": 1}},
		map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{map[string]any{"user_id": mallory, "presence": "online", "last_active_ago": 1}}}},
		map[string]any{"edu_type": "m.receipt", "content": "not an object"},
		map[string]any{"edu_type": 5},
		"not an EDU",
		map[string]any{"edu_type": "org.example.unknown", "content": map[string]any{}},
		// Typing of alice (A's) in a room that does not exist.
		map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": "!nowhere:" + string(a.name), "user_id": alice.userID, "typing": true}},
		map[string]any{"edu_type": "m.direct_to_device", "content": map[string]any{
			"sender": alice.userID, "type": "m.marker", "message_id": "m1",
			"messages": map[string]any{bob.userID: map[string]any{bobDev: map[string]any{"marker": true}}},
		}},
	}
	txn := map[string]any{"origin": string(a.name), "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{}, "edus": edus}
	code, body := fedDo(t, signedRequest(t, b.fedURL, "PUT", a.name, b.name, a.signingKey(t), "/_matrix/federation/v1/send/forged-1", txn))
	if code != http.StatusOK {
		t.Fatalf("the transaction was answered %d %v, want 200", code, body)
	}

	bob.syncUntil(since, "the marker message", func(s *eduSync) bool {
		if slices.Contains(typingUsers(s.ephemeral(roomID, "m.typing")), mallory) {
			t.Fatal("bob sees mallory typing")
		}
		if slices.Contains(s.DeviceLists.Changed, mallory) {
			t.Fatal("bob sees mallory's device list change")
		}
		for _, ev := range s.Presence.Events {
			if ev.Sender == mallory {
				t.Fatal("bob sees mallory's presence")
			}
		}
		if r := s.ephemeral(roomID, "m.receipt"); r != nil && json.Valid(r) && string(r) != "{}" {
			var c map[string]map[string]map[string]any
			_ = json.Unmarshal(r, &c)
			if _, ok := c["$x"]; ok {
				t.Fatalf("bob sees mallory's receipt: %s", r)
			}
		}
		marker := false
		for _, ev := range s.ToDevice.Events {
			if ev.Type == "m.forged" {
				t.Fatalf("bob got a to-device message from mallory: %+v", ev)
			}
			marker = marker || (ev.Type == "m.marker" && ev.Sender == alice.userID)
		}
		return marker
	})
}
