package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// answeringRemote is a TLS server that answers every request with body; its
// name is its address (an IP literal with a port, used as it is).
func answeringRemote(t *testing.T, body string) spec.ServerName {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return spec.ServerName(strings.TrimPrefix(srv.URL, "https://"))
}

func testClient(t *testing.T) *Client {
	t.Helper()
	key, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return NewClient(&Identity{ServerName: "self.example", Key: key}, ClientOptions{SkipTLSVerify: true, AllowPrivateNetworks: true})
}

// A server speaks only for the users and devices asked of it: what else
// it answers is dropped, and key objects keep every field they came with.
func TestRemoteAnswersAreKeptToWhatWasAsked(t *testing.T) {
	c := testClient(t)
	remote := answeringRemote(t, `{
		"device_keys": {
			"@alice:r": {
				"D1": {"user_id": "@alice:r", "device_id": "D1", "keys": {}, "extra": {"kept": true}},
				"D2": {"user_id": "@alice:r", "device_id": "D2", "keys": {}},
				"D3": {"user_id": "@mallory:r", "device_id": "D3", "keys": {}},
				"D4": {"user_id": "@alice:r", "device_id": "OTHER", "keys": {}}
			},
			"@mallory:elsewhere": {"M": {"user_id": "@mallory:elsewhere", "device_id": "M"}}
		},
		"master_keys": {
			"@alice:r": {"user_id": "@alice:r", "usage": ["master"], "keys": {}},
			"@mallory:elsewhere": {"user_id": "@mallory:elsewhere", "usage": ["master"], "keys": {}}
		},
		"self_signing_keys": {"@alice:r": {"user_id": "@bob:r", "usage": ["self_signing"], "keys": {}}}
	}`)
	got, err := c.QueryKeys(context.Background(), remote, map[string][]string{"@alice:r": nil})
	if err != nil {
		t.Fatal(err)
	}
	alice := got.DeviceKeys["@alice:r"]
	if len(got.DeviceKeys) != 1 || len(alice) != 2 || alice["D1"] == nil || alice["D2"] == nil {
		t.Fatalf("device keys kept: %s", mustJSON(t, got.DeviceKeys))
	}
	if !strings.Contains(string(alice["D1"]), `"extra": {"kept": true}`) {
		t.Fatalf("D1 lost a field: %s", alice["D1"])
	}
	if len(got.MasterKeys) != 1 || got.MasterKeys["@alice:r"] == nil || len(got.SelfSigningKeys) != 0 {
		t.Fatalf("cross-signing keys kept: %s %s", mustJSON(t, got.MasterKeys), mustJSON(t, got.SelfSigningKeys))
	}

	got, err = c.QueryKeys(context.Background(), remote, map[string][]string{"@alice:r": {"D2"}})
	if err != nil {
		t.Fatal(err)
	}
	if devices := got.DeviceKeys["@alice:r"]; len(devices) != 1 || devices["D2"] == nil {
		t.Fatalf("asked for D2, kept %s", mustJSON(t, got.DeviceKeys))
	}

	claimRemote := answeringRemote(t, `{"one_time_keys": {
		"@alice:r": {"D1": {"signed_curve25519:A": {"key": "k"}}, "D9": {"signed_curve25519:B": {"key": "k"}}},
		"@mallory:elsewhere": {"M": {"signed_curve25519:C": {"key": "k"}}}
	}}`)
	claimed, err := c.ClaimKeys(context.Background(), claimRemote, map[string]map[string]string{"@alice:r": {"D1": "signed_curve25519"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 1 || len(claimed["@alice:r"]) != 1 || claimed["@alice:r"]["D1"]["signed_curve25519:A"] == nil {
		t.Fatalf("claimed keys kept: %s", mustJSON(t, claimed))
	}
}

func TestRemoteAliasAnswerNeedsARoomID(t *testing.T) {
	c := testClient(t)
	if _, _, err := c.LookupRoomAlias(context.Background(), answeringRemote(t, `{"room_id": "not a room", "servers": []}`), "#a:r"); err == nil {
		t.Fatal("a bad room ID was accepted")
	}
	roomID, servers, err := c.LookupRoomAlias(context.Background(), answeringRemote(t, `{"room_id": "!room:r"}`), "#a:r")
	if err != nil || roomID != "!room:r" || servers == nil {
		t.Fatalf("alias: %q %v %v", roomID, servers, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
