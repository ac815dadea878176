package httpapi

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func passwordLogin(user, password string) map[string]any {
	return map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
	}
}

func TestLoginFlows(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	status, body := ts.do(t, "GET", clientV3+"/login", "", nil)
	flows, _ := body["flows"].([]any)
	if status != 200 || len(flows) != 1 || flows[0].(map[string]any)["type"] != "m.login.password" {
		t.Fatalf("got %d %v", status, body)
	}
}

func TestLoginSucceeds(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	tests := []struct {
		name string
		req  map[string]any
	}{
		{"by localpart", passwordLogin("alice", alice.Password)},
		{"by user ID", passwordLogin("@alice:test.local", alice.Password)},
		{"in other case", passwordLogin("@ALICE:test.local", alice.Password)},
		{"by deprecated user field", map[string]any{"type": "m.login.password", "user": "alice", "password": alice.Password}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ts.do(t, "POST", clientV3+"/login", "", tt.req)
			if status != 200 || body["user_id"] != "@alice:test.local" || body["home_server"] != "test.local" {
				t.Fatalf("got %d %v", status, body)
			}
			if id, _ := body["device_id"].(string); !regexp.MustCompile(`^[A-Z]{10}$`).MatchString(id) || id == alice.DeviceID {
				t.Fatalf("device_id = %q", id)
			}
			token, _ := body["access_token"].(string)
			status, who := ts.do(t, "GET", clientV3+"/account/whoami", token, nil)
			if status != 200 || who["user_id"] != "@alice:test.local" || who["device_id"] != body["device_id"] {
				t.Fatalf("whoami with the new token: %d %v", status, who)
			}
		})
	}
}

func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	withType := func(typ string) map[string]any {
		m := passwordLogin("alice", alice.Password)
		m["type"] = typ
		return m
	}
	tests := []struct {
		name       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"wrong password", passwordLogin("alice", "nope"), 403, "M_FORBIDDEN"},
		{"unknown user", passwordLogin("nobody", "pw"), 403, "M_FORBIDDEN"},
		{"other server", passwordLogin("@alice:elsewhere.org", alice.Password), 403, "M_FORBIDDEN"},
		{"third-party identifier", map[string]any{"type": "m.login.password", "password": "pw",
			"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"}}, 403, "M_FORBIDDEN"},
		{"unknown login type", withType("m.login.token"), 400, "M_UNKNOWN"},
		{"missing login type", withType(""), 400, "M_MISSING_PARAM"},
		{"unknown identifier type", map[string]any{"type": "m.login.password", "password": "pw",
			"identifier": map[string]any{"type": "m.id.carrier_pigeon"}}, 400, "M_UNKNOWN"},
		{"missing identifier", map[string]any{"type": "m.login.password", "password": "pw"}, 400, "M_MISSING_PARAM"},
		{"identifier without user", map[string]any{"type": "m.login.password", "password": "pw",
			"identifier": map[string]any{"type": "m.id.user"}}, 400, "M_MISSING_PARAM"},
		{"missing password", map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": "alice"}}, 400, "M_MISSING_PARAM"},
		{"malformed user ID", passwordLogin("@alice", alice.Password), 400, "M_INVALID_PARAM"},
		{"overlong device ID", func() map[string]any {
			m := passwordLogin("alice", alice.Password)
			m["device_id"] = strings.Repeat("D", 513)
			return m
		}(), 400, "M_INVALID_PARAM"},
		{"not JSON", rawJSON(`type=m.login.password`), 400, "M_NOT_JSON"},
		{"array body", rawJSON(`[]`), 400, "M_BAD_JSON"},
		{"string identifier", map[string]any{"type": "m.login.password", "identifier": "alice", "password": "pw"}, 400, "M_BAD_JSON"},
		{"number password", map[string]any{"type": "m.login.password", "user": "alice", "password": 1234}, 400, "M_BAD_JSON"},
		{"number type", map[string]any{"type": 1, "user": "alice", "password": "pw"}, 400, "M_BAD_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ts.do(t, "POST", clientV3+"/login", "", tt.body)
			wantError(t, status, body, tt.wantStatus, tt.wantCode)
		})
	}
}

func TestLoginToDeactivatedAccount(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	hash, err := hashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.CreateAccount(context.Background(), persistence.Account{Localpart: "gone", PasswordHash: hash, Deactivated: true}); err != nil {
		t.Fatal(err)
	}
	status, body := ts.do(t, "POST", clientV3+"/login", "", passwordLogin("gone", "pw"))
	wantError(t, status, body, 403, "M_USER_DEACTIVATED")
	// Without the password nobody learns the account exists.
	status, body = ts.do(t, "POST", clientV3+"/login", "", passwordLogin("gone", "wrong"))
	wantError(t, status, body, 403, "M_FORBIDDEN")
}

func TestLoginWithKnownDeviceReplacesItsToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	// Use the old token first, so that it sits in the token cache.
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil); status != 200 {
		t.Fatalf("whoami: %d %v", status, body)
	}
	req := passwordLogin("alice", alice.Password)
	req["device_id"] = alice.DeviceID
	status, body := ts.do(t, "POST", clientV3+"/login", "", req)
	if status != 200 || body["device_id"] != alice.DeviceID {
		t.Fatalf("login: %d %v", status, body)
	}
	newToken, _ := body["access_token"].(string)
	if newToken == alice.Token {
		t.Fatal("token was not replaced")
	}
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil)
	wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", newToken, nil)
	if status != 200 || body["device_id"] != alice.DeviceID {
		t.Fatalf("whoami with new token: %d %v", status, body)
	}
	devs, err := ts.Store.ListDevices(context.Background(), "alice")
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices = %v, %v; want the one device", devs, err)
	}
}

func TestLoginWithNewDeviceIDKeepsItsDisplayName(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	req := passwordLogin("alice", alice.Password)
	req["device_id"], req["initial_device_display_name"] = "LAPTOP", "Alice's laptop"
	if status, body := ts.do(t, "POST", clientV3+"/login", "", req); status != 200 || body["device_id"] != "LAPTOP" {
		t.Fatalf("login: %d %v", status, body)
	}
	// A later login with the same device ignores the new display name.
	req["initial_device_display_name"] = "renamed"
	if status, body := ts.do(t, "POST", clientV3+"/login", "", req); status != 200 {
		t.Fatalf("second login: %d %v", status, body)
	}
	devs, err := ts.Store.ListDevices(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.DeviceID == "LAPTOP" && d.DisplayName != "Alice's laptop" {
			t.Fatalf("display name = %q", d.DisplayName)
		}
	}
	if len(devs) != 2 {
		t.Fatalf("devices = %v, want 2", devs)
	}
}
