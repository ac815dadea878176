package httpapi

import (
	"net/http"
	"testing"
)

func TestWhoamiNeedsAValidToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")

	status, body := ts.do(t, "GET", clientV3+"/account/whoami", "", nil)
	wantError(t, status, body, 401, "M_MISSING_TOKEN")
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", "syt_not_a_token", nil)
	wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")

	status, body = ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil)
	if status != 200 || body["user_id"] != alice.UserID || body["device_id"] != alice.DeviceID || body["is_guest"] != false {
		t.Fatalf("whoami: %d %v", status, body)
	}
	// The deprecated query parameter, and the r0 prefix older clients use.
	status, body = ts.do(t, "GET", "/_matrix/client/r0/account/whoami?access_token="+alice.Token, "", nil)
	if status != 200 || body["user_id"] != alice.UserID {
		t.Fatalf("r0 whoami with query token: %d %v", status, body)
	}
}

func TestLogoutEndsOnlyThatDevice(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	status, body := ts.do(t, "POST", clientV3+"/login", "", passwordLogin("alice", alice.Password))
	if status != 200 {
		t.Fatalf("login: %d %v", status, body)
	}
	other, _ := body["access_token"].(string)

	status, body = ts.do(t, "POST", clientV3+"/logout", alice.Token, map[string]any{})
	if status != 200 || len(body) != 0 {
		t.Fatalf("logout: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil)
	wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	status, body = ts.do(t, "POST", clientV3+"/logout", alice.Token, nil)
	wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", other, nil); status != 200 {
		t.Fatalf("the other device was logged out too: %d %v", status, body)
	}
}

func TestLogoutAllEndsEveryDevice(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	bob := ts.register(t, "bob")
	status, body := ts.do(t, "POST", clientV3+"/login", "", passwordLogin("alice", alice.Password))
	if status != 200 {
		t.Fatalf("login: %d %v", status, body)
	}
	second, _ := body["access_token"].(string)
	for _, tok := range []string{alice.Token, second} {
		if status, body := ts.do(t, "GET", clientV3+"/account/whoami", tok, nil); status != 200 {
			t.Fatalf("whoami: %d %v", status, body)
		}
	}

	if status, body := ts.do(t, "POST", clientV3+"/logout/all", second, nil); status != 200 {
		t.Fatalf("logout/all: %d %v", status, body)
	}
	for _, tok := range []string{alice.Token, second} {
		status, body := ts.do(t, "GET", clientV3+"/account/whoami", tok, nil)
		wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	}
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", bob.Token, nil); status != http.StatusOK {
		t.Fatalf("bob was logged out: %d %v", status, body)
	}
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	status, body := ts.do(t, "GET", clientV3+"/capabilities", "", nil)
	wantError(t, status, body, 401, "M_MISSING_TOKEN")

	status, body = ts.do(t, "GET", clientV3+"/capabilities", alice.Token, nil)
	caps, _ := body["capabilities"].(map[string]any)
	if status != 200 || caps == nil {
		t.Fatalf("got %d %v", status, body)
	}
	enabled := func(name string) any { m, _ := caps[name].(map[string]any); return m["enabled"] }
	for name, want := range map[string]bool{
		"m.change_password": true, "m.set_displayname": true, "m.set_avatar_url": true, "m.3pid_changes": false,
	} {
		if enabled(name) != want {
			t.Errorf("%s = %v, want enabled %v", name, caps[name], want)
		}
	}
	versions, _ := caps["m.room_versions"].(map[string]any)
	available, _ := versions["available"].(map[string]any)
	if versions["default"] != "11" || available["10"] != "stable" || available["11"] != "stable" {
		t.Errorf("m.room_versions = %v", versions)
	}
}

func TestUnknownEndpoints(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	status, body := ts.do(t, "GET", clientV3+"/no/such/thing", "", nil)
	wantError(t, status, body, 404, "M_UNRECOGNIZED")
	status, body = ts.do(t, "DELETE", clientV3+"/login", "", nil)
	wantError(t, status, body, 405, "M_UNRECOGNIZED")
}
