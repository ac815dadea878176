package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

func TestProfileSetAndGet(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	base := clientV3 + "/profile/@alice:test.local"

	// Freshly registered: display name only, no avatar.
	status, body := ts.do(t, "GET", base+"/avatar_url", "", nil)
	wantError(t, status, body, 404, "M_NOT_FOUND")

	if status, body := ts.do(t, "PUT", base+"/displayname", alice.Token, map[string]any{"displayname": "Alice W."}); status != 200 || len(body) != 0 {
		t.Fatalf("set displayname: %d %v", status, body)
	}
	if status, body := ts.do(t, "PUT", base+"/avatar_url", alice.Token, map[string]any{"avatar_url": "mxc://test.local/abc123"}); status != 200 {
		t.Fatalf("set avatar_url: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", base+"/displayname", "", nil)
	if status != 200 || body["displayname"] != "Alice W." || len(body) != 1 {
		t.Fatalf("get displayname: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", base+"/avatar_url", "", nil)
	if status != 200 || body["avatar_url"] != "mxc://test.local/abc123" || len(body) != 1 {
		t.Fatalf("get avatar_url: %d %v", status, body)
	}
	// Clients escape the user ID in the path.
	status, body = ts.do(t, "GET", clientV3+"/profile/%40alice%3Atest.local", "", nil)
	if status != 200 || body["displayname"] != "Alice W." || body["avatar_url"] != "mxc://test.local/abc123" {
		t.Fatalf("get profile: %d %v", status, body)
	}

	// An empty string clears a field, which then disappears.
	if status, body := ts.do(t, "PUT", base+"/avatar_url", alice.Token, map[string]any{"avatar_url": ""}); status != 200 {
		t.Fatalf("clear avatar_url: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", base, "", nil)
	if _, has := body["avatar_url"]; status != 200 || has {
		t.Fatalf("profile after clearing: %d %v", status, body)
	}
}

func TestProfileOfUnknownUsers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tests := []struct {
		path       string
		wantStatus int
		wantCode   string
	}{
		{"/profile/@nobody:test.local", 404, "M_NOT_FOUND"},
		{"/profile/@nobody:test.local/displayname", 404, "M_NOT_FOUND"},
		{"/profile/@nobody:test.local/avatar_url", 404, "M_NOT_FOUND"},
		{"/profile/@alice:elsewhere.org", 404, "M_NOT_FOUND"},
		{"/profile/alice", 400, "M_INVALID_PARAM"},
		{"/profile/@alice", 400, "M_INVALID_PARAM"},
		{"/profile/@:test.local", 400, "M_INVALID_PARAM"},
	}
	for _, tt := range tests {
		status, body := ts.do(t, "GET", clientV3+tt.path, "", nil)
		if status != tt.wantStatus || body["errcode"] != tt.wantCode {
			t.Errorf("%s: got %d %v, want %d %s", tt.path, status, body, tt.wantStatus, tt.wantCode)
		}
	}
}

func TestProfileUpdateRefusals(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ts.register(t, "bob")
	own := clientV3 + "/profile/@alice:test.local"
	tests := []struct {
		name       string
		path       string
		token      string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"no token", own + "/displayname", "", map[string]any{"displayname": "x"}, 401, "M_MISSING_TOKEN"},
		{"another user's name", clientV3 + "/profile/@bob:test.local/displayname", alice.Token, map[string]any{"displayname": "x"}, 403, "M_FORBIDDEN"},
		{"another user's avatar", clientV3 + "/profile/@bob:test.local/avatar_url", alice.Token, map[string]any{"avatar_url": "mxc://a/b"}, 403, "M_FORBIDDEN"},
		{"remote user", clientV3 + "/profile/@alice:elsewhere.org/displayname", alice.Token, map[string]any{"displayname": "x"}, 403, "M_FORBIDDEN"},
		{"not JSON", own + "/displayname", alice.Token, rawJSON(`"Alice`), 400, "M_NOT_JSON"},
		{"array body", own + "/displayname", alice.Token, rawJSON(`["Alice"]`), 400, "M_BAD_JSON"},
		{"number name", own + "/displayname", alice.Token, map[string]any{"displayname": 5}, 400, "M_BAD_JSON"},
		{"null name", own + "/displayname", alice.Token, map[string]any{"displayname": nil}, 400, "M_BAD_JSON"},
		{"object avatar", own + "/avatar_url", alice.Token, map[string]any{"avatar_url": map[string]any{}}, 400, "M_BAD_JSON"},
		{"missing name", own + "/displayname", alice.Token, map[string]any{"avatar_url": "mxc://a/b"}, 400, "M_MISSING_PARAM"},
		{"empty body", own + "/avatar_url", alice.Token, nil, 400, "M_MISSING_PARAM"},
		{"overlong name", own + "/displayname", alice.Token, map[string]any{"displayname": strings.Repeat("é", 257)}, 400, "M_INVALID_PARAM"},
		{"http avatar", own + "/avatar_url", alice.Token, map[string]any{"avatar_url": "https://example.org/a.png"}, 400, "M_INVALID_PARAM"},
		{"mxc without media", own + "/avatar_url", alice.Token, map[string]any{"avatar_url": "mxc://test.local/"}, 400, "M_INVALID_PARAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ts.do(t, "PUT", tt.path, tt.token, tt.body)
			wantError(t, status, body, tt.wantStatus, tt.wantCode)
		})
	}
	// None of that changed Alice's or Bob's profile.
	for _, who := range []string{"alice", "bob"} {
		status, body := ts.do(t, "GET", clientV3+"/profile/@"+who+":test.local", "", nil)
		if status != http.StatusOK || body["displayname"] != who || len(body) != 1 {
			t.Errorf("%s's profile: %d %v", who, status, body)
		}
	}
}
