package httpapi

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestRegisterAsksForDummyStageFirst(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	status, body := ts.do(t, "POST", clientV3+"/register", "", map[string]any{"username": "alice", "password": "pw"})
	if status != http.StatusUnauthorized {
		t.Fatalf("got %d %v, want 401", status, body)
	}
	flows, _ := body["flows"].([]any)
	if len(flows) != 1 {
		t.Fatalf("flows = %v", body["flows"])
	}
	stages, _ := flows[0].(map[string]any)["stages"].([]any)
	if len(stages) != 1 || stages[0] != "m.login.dummy" {
		t.Fatalf("stages = %v", stages)
	}
	if params, ok := body["params"].(map[string]any); !ok || len(params) != 0 {
		t.Fatalf("params = %v, want {}", body["params"])
	}
	if s, _ := body["session"].(string); s == "" {
		t.Fatalf("no session in %v", body)
	}
	// Nothing was created by the first round.
	status, body = ts.do(t, "GET", clientV3+"/register/available?username=alice", "", nil)
	if status != http.StatusOK || body["available"] != true {
		t.Fatalf("alice taken after the 401 round: %d %v", status, body)
	}
}

func TestRegisterCreatesAccountAndLogsIn(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	u := ts.register(t, "alice")
	if u.UserID != "@alice:test.local" {
		t.Fatalf("user_id = %q", u.UserID)
	}
	status, body := ts.do(t, "GET", clientV3+"/account/whoami", u.Token, nil)
	if status != http.StatusOK || body["user_id"] != u.UserID || body["device_id"] != u.DeviceID {
		t.Fatalf("whoami: %d %v", status, body)
	}
	// A new user is displayed by their localpart.
	status, body = ts.do(t, "GET", clientV3+"/profile/@alice:test.local", "", nil)
	if status != http.StatusOK || body["displayname"] != "alice" {
		t.Fatalf("profile: %d %v", status, body)
	}
}

func TestRegisterReplyFields(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	dummy := map[string]any{"type": "m.login.dummy"}
	tests := []struct {
		name  string
		req   map[string]any
		check func(t *testing.T, body map[string]any)
	}{
		{"username is lower-cased", map[string]any{"username": "BoB", "password": "pw"}, func(t *testing.T, b map[string]any) {
			if b["user_id"] != "@bob:test.local" {
				t.Errorf("user_id = %v", b["user_id"])
			}
		}},
		{"client device ID and home_server", map[string]any{"username": "carol", "password": "pw", "device_id": "MYPHONE"}, func(t *testing.T, b map[string]any) {
			if b["device_id"] != "MYPHONE" || b["home_server"] != "test.local" {
				t.Errorf("reply = %v", b)
			}
		}},
		{"generated device ID", map[string]any{"username": "dave", "password": "pw"}, func(t *testing.T, b map[string]any) {
			if id, _ := b["device_id"].(string); !regexp.MustCompile(`^[A-Z]{10}$`).MatchString(id) {
				t.Errorf("device_id = %q", id)
			}
		}},
		{"generated username", map[string]any{"password": "pw"}, func(t *testing.T, b map[string]any) {
			if id, _ := b["user_id"].(string); !regexp.MustCompile(`^@[a-z][a-z0-9]{11}:test\.local$`).MatchString(id) {
				t.Errorf("user_id = %q", id)
			}
		}},
		{"inhibit_login", map[string]any{"username": "erin", "password": "pw", "inhibit_login": true}, func(t *testing.T, b map[string]any) {
			_, hasToken := b["access_token"]
			_, hasDevice := b["device_id"]
			if b["user_id"] != "@erin:test.local" || hasToken || hasDevice {
				t.Errorf("reply = %v", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req["auth"] = dummy
			status, body := ts.do(t, "POST", clientV3+"/register", "", tt.req)
			if status != http.StatusOK {
				t.Fatalf("got %d %v", status, body)
			}
			tt.check(t, body)
		})
	}
	// The inhibited registration still made a usable account.
	status, body := ts.do(t, "POST", clientV3+"/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "erin"}, "password": "pw",
	})
	if status != http.StatusOK {
		t.Fatalf("login after inhibit_login: %d %v", status, body)
	}
}

func TestRegisterRefusals(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.register(t, "taken")
	dummy := map[string]any{"type": "m.login.dummy"}
	tests := []struct {
		name       string
		query      string
		body       any
		wantStatus int
		wantCode   string
	}{
		// Name checks come before authentication, as the spec asks.
		{"taken name", "", map[string]any{"username": "taken", "password": "pw"}, 400, "M_USER_IN_USE"},
		{"taken name in other case", "", map[string]any{"username": "TAKEN", "password": "pw"}, 400, "M_USER_IN_USE"},
		{"invalid name", "", map[string]any{"username": "al ice", "password": "pw"}, 400, "M_INVALID_USERNAME"},
		{"empty name", "", map[string]any{"username": "", "password": "pw"}, 400, "M_INVALID_USERNAME"},
		{"user ID as name", "", map[string]any{"username": "@x:test.local", "password": "pw"}, 400, "M_INVALID_USERNAME"},
		{"overlong name", "", map[string]any{"username": strings.Repeat("a", 250), "password": "pw"}, 400, "M_INVALID_USERNAME"},
		{"overlong password", "", map[string]any{"username": "x", "password": strings.Repeat("p", 513)}, 400, "M_INVALID_PARAM"},
		{"missing password", "", map[string]any{"username": "x", "auth": dummy}, 400, "M_MISSING_PARAM"},
		{"empty password", "", map[string]any{"username": "x", "password": "", "auth": dummy}, 400, "M_MISSING_PARAM"},
		{"guest", "?kind=guest", map[string]any{}, 403, "M_GUEST_ACCESS_FORBIDDEN"},
		{"unknown kind", "?kind=robot", map[string]any{"username": "x", "password": "pw"}, 400, "M_INVALID_PARAM"},
		{"not JSON", "", rawJSON(`{"username":`), 400, "M_NOT_JSON"},
		{"array body", "", rawJSON(`["alice"]`), 400, "M_BAD_JSON"},
		{"number username", "", map[string]any{"username": 5, "password": "pw"}, 400, "M_BAD_JSON"},
		{"bool password", "", map[string]any{"username": "x", "password": true}, 400, "M_BAD_JSON"},
		{"string auth", "", map[string]any{"username": "x", "password": "pw", "auth": "dummy"}, 400, "M_BAD_JSON"},
		{"string inhibit_login", "", map[string]any{"username": "x", "password": "pw", "inhibit_login": "yes", "auth": dummy}, 400, "M_BAD_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ts.do(t, "POST", clientV3+"/register"+tt.query, "", tt.body)
			wantError(t, status, body, tt.wantStatus, tt.wantCode)
		})
	}
}

func TestRegisterIncompleteAuthIsAskedAgain(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	// A session the client believes complete, without a stage done.
	status, body := ts.do(t, "POST", clientV3+"/register", "", map[string]any{
		"username": "alice", "password": "pw", "auth": map[string]any{"session": "abc"},
	})
	if status != http.StatusUnauthorized || body["session"] != "abc" {
		t.Fatalf("got %d %v, want 401 for session abc", status, body)
	}
	if c, ok := body["completed"].([]any); !ok || len(c) != 0 {
		t.Fatalf("completed = %v, want []", body["completed"])
	}
	// A stage the server does not offer fails the stage, not the request.
	status, body = ts.do(t, "POST", clientV3+"/register", "", map[string]any{
		"username": "alice", "password": "pw", "auth": map[string]any{"type": "m.login.recaptcha", "session": "abc"},
	})
	if status != http.StatusUnauthorized || body["errcode"] != "M_UNRECOGNIZED" || body["flows"] == nil {
		t.Fatalf("got %d %v, want 401 M_UNRECOGNIZED with flows", status, body)
	}
}

func TestRegisterDisabled(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *testServerConfig) { c.Options.RegistrationEnabled = false })
	status, body := ts.do(t, "POST", clientV3+"/register", "", map[string]any{"username": "alice", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}})
	wantError(t, status, body, 403, "M_FORBIDDEN")
	status, body = ts.do(t, "GET", clientV3+"/register/available?username=alice", "", nil)
	wantError(t, status, body, 403, "M_FORBIDDEN")
}

func TestRegisterAvailable(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.register(t, "alice")
	tests := []struct {
		query      string
		wantStatus int
		wantCode   string
	}{
		{"?username=bob", 200, ""},
		{"?username=alice", 400, "M_USER_IN_USE"},
		{"?username=Alice", 400, "M_USER_IN_USE"},
		{"?username=a%20b", 400, "M_INVALID_USERNAME"},
		{"?username=", 400, "M_INVALID_USERNAME"},
		{"", 400, "M_MISSING_PARAM"},
	}
	for _, tt := range tests {
		status, body := ts.do(t, "GET", clientV3+"/register/available"+tt.query, "", nil)
		if tt.wantCode == "" {
			if status != 200 || body["available"] != true {
				t.Errorf("%s: got %d %v", tt.query, status, body)
			}
			continue
		}
		if status != tt.wantStatus || body["errcode"] != tt.wantCode {
			t.Errorf("%s: got %d %v, want %d %s", tt.query, status, body, tt.wantStatus, tt.wantCode)
		}
	}
}

func TestRegisterSameNameConcurrentlyMakesOneAccount(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	codes := make([]any, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], codes[i] = 0, nil
			status, body := ts.do(t, "POST", clientV3+"/register", "", map[string]any{
				"username": "racer", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"},
			})
			statuses[i], codes[i] = status, body["errcode"]
		}()
	}
	wg.Wait()
	ok := 0
	for i := range n {
		switch {
		case statuses[i] == 200:
			ok++
		case statuses[i] == 400 && codes[i] == "M_USER_IN_USE":
		default:
			t.Errorf("request %d: %d %v", i, statuses[i], codes[i])
		}
	}
	if ok != 1 {
		t.Fatalf("%d registrations of one name succeeded, want 1", ok)
	}
}
