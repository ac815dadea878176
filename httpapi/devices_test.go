package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// passwordAuth is the auth dict of an m.login.password stage.
func passwordAuth(session, user, password string) map[string]any {
	a := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
	}
	if session != "" {
		a["session"] = session
	}
	return a
}

// wantUIAChallenge fails unless the reply is the 401 that offers one
// m.login.password stage, and returns its session; errcode is the failed
// attempt's error, "" for none.
func wantUIAChallenge(t *testing.T, status int, body map[string]any, errcode string) string {
	t.Helper()
	flows, _ := body["flows"].([]any)
	var stages []any
	if len(flows) == 1 {
		stages, _ = flows[0].(map[string]any)["stages"].([]any)
	}
	params, isObject := body["params"].(map[string]any)
	session, _ := body["session"].(string)
	gotCode, _ := body["errcode"].(string)
	if status != http.StatusUnauthorized || len(stages) != 1 || stages[0] != "m.login.password" ||
		!isObject || len(params) != 0 || session == "" || gotCode != errcode {
		t.Fatalf("got %d %v, want 401 with one m.login.password flow, params {}, a session and errcode %q", status, body, errcode)
	}
	return session
}

// loginAgain logs a user in on a new device and returns its token and ID.
func (ts *testServer) loginAgain(t *testing.T, u testUser) (token, deviceID string) {
	t.Helper()
	status, body := ts.login(t, u.Localpart, u.Password)
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %v", u.Localpart, status, body)
	}
	return body["access_token"].(string), body["device_id"].(string)
}

func (ts *testServer) deviceIDs(t *testing.T, token string) []string {
	t.Helper()
	status, body := ts.do(t, "GET", clientV3+"/devices", token, nil)
	devs, ok := body["devices"].([]any)
	if status != http.StatusOK || !ok {
		t.Fatalf("GET /devices: %d %v", status, body)
	}
	ids := []string{}
	for _, d := range devs {
		ids = append(ids, d.(map[string]any)["device_id"].(string))
	}
	slices.Sort(ids)
	return ids
}

func TestDevicesListGetAndRename(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	bob := ts.register(t, "bob")
	_, second := ts.loginAgain(t, alice)

	want := []string{alice.DeviceID, second}
	slices.Sort(want)
	for _, prefix := range []string{clientV3, "/_matrix/client/r0"} {
		status, body := ts.do(t, "GET", prefix+"/devices", alice.Token, nil)
		if status != http.StatusOK || len(body["devices"].([]any)) != 2 {
			t.Fatalf("GET %s/devices: %d %v", prefix, status, body)
		}
	}
	if got := ts.deviceIDs(t, alice.Token); !slices.Equal(got, want) {
		t.Fatalf("devices = %v, want %v", got, want)
	}

	// A device without a name has no display_name.
	status, body := ts.do(t, "GET", clientV3+"/devices/"+second, alice.Token, nil)
	if _, named := body["display_name"]; status != http.StatusOK || body["device_id"] != second || named {
		t.Fatalf("GET /devices/%s: %d %v", second, status, body)
	}
	status, body = ts.do(t, "PUT", clientV3+"/devices/"+second, alice.Token, map[string]any{"display_name": "Alice's phone"})
	if status != http.StatusOK || len(body) != 0 {
		t.Fatalf("PUT /devices/%s: %d %v", second, status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/devices/"+second, alice.Token, nil)
	if status != http.StatusOK || body["display_name"] != "Alice's phone" {
		t.Fatalf("after rename: %d %v", status, body)
	}
	// Without display_name nothing changes.
	if status, body := ts.do(t, "PUT", clientV3+"/devices/"+second, alice.Token, map[string]any{}); status != http.StatusOK {
		t.Fatalf("PUT {}: %d %v", status, body)
	}
	if _, body := ts.do(t, "GET", clientV3+"/devices/"+second, alice.Token, nil); body["display_name"] != "Alice's phone" {
		t.Fatalf("PUT {} changed the name: %v", body)
	}
	// Renaming keeps the device logged in.
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil); status != http.StatusOK {
		t.Fatalf("whoami after rename: %d %v", status, body)
	}

	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		errcode                   string
	}{
		{"unknown device", "GET", "/devices/NOSUCHDEVICE", alice.Token, nil, 404, "M_NOT_FOUND"},
		{"rename unknown device", "PUT", "/devices/NOSUCHDEVICE", alice.Token, map[string]any{"display_name": "x"}, 404, "M_NOT_FOUND"},
		{"another user's device", "GET", "/devices/" + bob.DeviceID, alice.Token, nil, 404, "M_NOT_FOUND"},
		{"rename another user's device", "PUT", "/devices/" + bob.DeviceID, alice.Token, map[string]any{"display_name": "mine"}, 404, "M_NOT_FOUND"},
		{"name of the wrong type", "PUT", "/devices/" + second, alice.Token, map[string]any{"display_name": 7}, 400, "M_BAD_JSON"},
		{"not JSON", "PUT", "/devices/" + second, alice.Token, rawJSON("{"), 400, "M_NOT_JSON"},
		{"name too long", "PUT", "/devices/" + second, alice.Token, map[string]any{"display_name": string(make([]byte, 513))}, 400, "M_INVALID_PARAM"},
		{"no token", "GET", "/devices", "", nil, 401, "M_MISSING_TOKEN"},
	} {
		status, body := ts.do(t, tc.method, clientV3+tc.path, tc.token, tc.body)
		if status != tc.status || body["errcode"] != tc.errcode {
			t.Errorf("%s: got %d %v, want %d %s", tc.name, status, body, tc.status, tc.errcode)
		}
	}
	if _, body := ts.do(t, "GET", clientV3+"/devices/"+bob.DeviceID, bob.Token, nil); body["display_name"] != nil {
		t.Fatalf("bob's device was renamed: %v", body)
	}
}

func TestDeleteDeviceNeedsPasswordAuthAndEndsItsToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	phone, phoneID := ts.loginAgain(t, alice)
	path := clientV3 + "/devices/" + phoneID

	// No auth: the challenge, and nothing deleted.
	status, body := ts.do(t, "DELETE", path, alice.Token, nil)
	session := wantUIAChallenge(t, status, body, "")
	if c, ok := body["completed"].([]any); !ok || len(c) != 0 {
		t.Fatalf("completed = %v, want []", body["completed"])
	}
	// A wrong password: the challenge again, same session, M_FORBIDDEN.
	status, body = ts.do(t, "DELETE", path, alice.Token, map[string]any{"auth": passwordAuth(session, "alice", "wrong")})
	if got := wantUIAChallenge(t, status, body, "M_FORBIDDEN"); got != session {
		t.Fatalf("session changed from %q to %q", session, got)
	}
	// Auth as another user, even with their password, proves nothing.
	bob := ts.register(t, "bob")
	status, body = ts.do(t, "DELETE", path, alice.Token, map[string]any{"auth": passwordAuth(session, "bob", bob.Password)})
	wantUIAChallenge(t, status, body, "M_FORBIDDEN")
	// An unsupported stage.
	status, body = ts.do(t, "DELETE", path, alice.Token, map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}})
	wantUIAChallenge(t, status, body, "M_UNRECOGNIZED")
	// The session alone: not complete yet.
	status, body = ts.do(t, "DELETE", path, alice.Token, map[string]any{"auth": map[string]any{"session": session}})
	wantUIAChallenge(t, status, body, "")
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", phone, nil); status != http.StatusOK {
		t.Fatalf("the phone was logged out before auth completed: %d %v", status, body)
	}

	// The right password, as a full user ID.
	status, body = ts.do(t, "DELETE", path, alice.Token, map[string]any{"auth": passwordAuth(session, alice.UserID, alice.Password)})
	if status != http.StatusOK || len(body) != 0 {
		t.Fatalf("DELETE with auth: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", phone, nil)
	wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	status, body = ts.do(t, "GET", path, alice.Token, nil)
	wantError(t, status, body, 404, "M_NOT_FOUND")
	if got := ts.deviceIDs(t, alice.Token); !slices.Equal(got, []string{alice.DeviceID}) {
		t.Fatalf("devices = %v, want only %s", got, alice.DeviceID)
	}
	// The completed session: a retry returns the result again (the device
	// is gone, which counts as deleted).
	status, body = ts.do(t, "DELETE", path, alice.Token, map[string]any{"auth": map[string]any{"session": session}})
	if status != http.StatusOK {
		t.Fatalf("retry with the completed session: %d %v", status, body)
	}
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", bob.Token, nil); status != http.StatusOK {
		t.Fatalf("bob was logged out: %d %v", status, body)
	}
}

func TestUIASessionsAreBoundToUserAndOperation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	bob := ts.register(t, "bob")
	_, phoneID := ts.loginAgain(t, alice)

	status, body := ts.do(t, "DELETE", clientV3+"/devices/"+phoneID, alice.Token, nil)
	session := wantUIAChallenge(t, status, body, "")

	// Another operation may not use it.
	status, body = ts.do(t, "POST", clientV3+"/account/deactivate", alice.Token,
		map[string]any{"auth": passwordAuth(session, "alice", alice.Password)})
	wantError(t, status, body, 403, "M_FORBIDDEN")
	// Another user does not know it.
	status, body = ts.do(t, "DELETE", clientV3+"/devices/"+bob.DeviceID, bob.Token,
		map[string]any{"auth": passwordAuth(session, "bob", bob.Password)})
	wantError(t, status, body, 400, "M_UNKNOWN")
	status, body = ts.do(t, "DELETE", clientV3+"/devices/"+phoneID, alice.Token,
		map[string]any{"auth": passwordAuth("made-up", "alice", alice.Password)})
	wantError(t, status, body, 400, "M_UNKNOWN")
	// Auth without a session is one request.
	status, body = ts.do(t, "DELETE", clientV3+"/devices/"+phoneID, alice.Token,
		map[string]any{"auth": passwordAuth("", "alice", alice.Password)})
	if status != http.StatusOK {
		t.Fatalf("auth without a session: %d %v", status, body)
	}
	// A malformed auth dict.
	status, body = ts.do(t, "DELETE", clientV3+"/devices/"+phoneID, alice.Token, map[string]any{"auth": "password"})
	wantError(t, status, body, 400, "M_BAD_JSON")
	status, body = ts.do(t, "DELETE", clientV3+"/devices/"+phoneID, alice.Token,
		map[string]any{"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user"}, "password": "x"}})
	wantUIAChallenge(t, status, body, "M_MISSING_PARAM")
}

func TestUIASessionsExpire(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	u := newUIASessions(func() time.Time { return now })
	id := u.start("@alice:test.local", "DELETE /x")
	if _, ok := u.get(id, "@alice:test.local"); !ok {
		t.Fatal("a new session is unknown")
	}
	if _, ok := u.get(id, "@bob:test.local"); ok {
		t.Fatal("another user's session was found")
	}
	now = now.Add(uiaSessionLifetime)
	if _, ok := u.get(id, "@alice:test.local"); ok {
		t.Fatal("an expired session was found")
	}
	if len(u.m) != 0 {
		t.Fatalf("%d sessions kept after expiry", len(u.m))
	}
}

func TestDeleteDevicesInBulk(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	bob := ts.register(t, "bob")
	tok2, id2 := ts.loginAgain(t, alice)
	tok3, id3 := ts.loginAgain(t, alice)

	status, body := ts.do(t, "POST", clientV3+"/delete_devices", alice.Token, map[string]any{})
	wantError(t, status, body, 400, "M_MISSING_PARAM")
	status, body = ts.do(t, "POST", clientV3+"/delete_devices", alice.Token, map[string]any{"devices": "all"})
	wantError(t, status, body, 400, "M_BAD_JSON")

	req := map[string]any{"devices": []string{id2, id3, "NOSUCHDEVICE", bob.DeviceID}}
	status, body = ts.do(t, "POST", "/_matrix/client/r0/delete_devices", alice.Token, req)
	session := wantUIAChallenge(t, status, body, "")
	req["auth"] = passwordAuth(session, "alice", "wrong")
	status, body = ts.do(t, "POST", "/_matrix/client/r0/delete_devices", alice.Token, req)
	wantUIAChallenge(t, status, body, "M_FORBIDDEN")
	req["auth"] = passwordAuth(session, "alice", alice.Password)
	status, body = ts.do(t, "POST", "/_matrix/client/r0/delete_devices", alice.Token, req)
	if status != http.StatusOK || len(body) != 0 {
		t.Fatalf("delete_devices with auth: %d %v", status, body)
	}
	for _, tok := range []string{tok2, tok3} {
		status, body := ts.do(t, "GET", clientV3+"/account/whoami", tok, nil)
		wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	}
	if got := ts.deviceIDs(t, alice.Token); !slices.Equal(got, []string{alice.DeviceID}) {
		t.Fatalf("devices = %v, want only %s", got, alice.DeviceID)
	}
	// Bob's device of that ID was not alice's to delete.
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", bob.Token, nil); status != http.StatusOK {
		t.Fatalf("bob was logged out: %d %v", status, body)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	other, _ := ts.loginAgain(t, alice)
	path := clientV3 + "/account/password"

	status, body := ts.do(t, "POST", path, alice.Token, map[string]any{})
	wantError(t, status, body, 400, "M_MISSING_PARAM")
	status, body = ts.do(t, "POST", path, alice.Token, map[string]any{"new_password": ""})
	wantError(t, status, body, 400, "M_INVALID_PARAM")
	status, body = ts.do(t, "POST", path, "", map[string]any{"new_password": "x"})
	wantError(t, status, body, 401, "M_MISSING_TOKEN")

	req := map[string]any{"new_password": "new-secret"}
	status, body = ts.do(t, "POST", path, alice.Token, req)
	session := wantUIAChallenge(t, status, body, "")
	req["auth"] = passwordAuth(session, "alice", "new-secret")
	status, body = ts.do(t, "POST", path, alice.Token, req)
	wantUIAChallenge(t, status, body, "M_FORBIDDEN")
	req["auth"] = passwordAuth(session, "alice", alice.Password)
	status, body = ts.do(t, "POST", path, alice.Token, req)
	if status != http.StatusOK || len(body) != 0 {
		t.Fatalf("password change: %d %v", status, body)
	}

	// The calling device stays, the other is logged out.
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil); status != http.StatusOK {
		t.Fatalf("the device that changed the password was logged out: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", other, nil)
	wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	status, body = ts.login(t, "alice", alice.Password)
	wantError(t, status, body, 403, "M_FORBIDDEN")
	if status, body := ts.login(t, "alice", "new-secret"); status != http.StatusOK {
		t.Fatalf("login with the new password: %d %v", status, body)
	}

	// logout_devices false keeps every device.
	third, _ := ts.loginAgain(t, testUser{Localpart: "alice", Password: "new-secret"})
	status, body = ts.do(t, "POST", path, alice.Token, map[string]any{
		"new_password": "newer", "logout_devices": false, "auth": passwordAuth("", "alice", "new-secret"),
	})
	if status != http.StatusOK {
		t.Fatalf("second change: %d %v", status, body)
	}
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", third, nil); status != http.StatusOK {
		t.Fatalf("logout_devices false logged a device out: %d %v", status, body)
	}
}

func TestDeactivateAccount(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	other, _ := ts.loginAgain(t, alice)
	path := clientV3 + "/account/deactivate"

	status, body := ts.do(t, "POST", path, alice.Token, map[string]any{"erase": "yes"})
	wantError(t, status, body, 400, "M_BAD_JSON")
	status, body = ts.do(t, "POST", path, alice.Token, map[string]any{})
	session := wantUIAChallenge(t, status, body, "")
	status, body = ts.do(t, "POST", path, alice.Token, map[string]any{"auth": passwordAuth(session, "alice", "nope")})
	wantUIAChallenge(t, status, body, "M_FORBIDDEN")
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", other, nil); status != http.StatusOK {
		t.Fatalf("a failed attempt logged a device out: %d %v", status, body)
	}

	status, body = ts.do(t, "POST", path, alice.Token, map[string]any{"auth": passwordAuth(session, "alice", alice.Password)})
	if status != http.StatusOK || body["id_server_unbind_result"] != "success" || len(body) != 1 {
		t.Fatalf("deactivate: %d %v", status, body)
	}
	for _, tok := range []string{alice.Token, other} {
		status, body := ts.do(t, "GET", clientV3+"/account/whoami", tok, nil)
		wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")
	}
	status, body = ts.login(t, "alice", alice.Password)
	wantError(t, status, body, 403, "M_USER_DEACTIVATED")
	status, body = ts.do(t, "GET", clientV3+"/register/available?username=alice", "", nil)
	wantError(t, status, body, 400, "M_USER_IN_USE")
}

func TestThreepidsAndThirdPartyProtocolsAreEmpty(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	status, body := ts.do(t, "GET", clientV3+"/account/3pid", alice.Token, nil)
	if list, ok := body["threepids"].([]any); status != http.StatusOK || !ok || len(list) != 0 || len(body) != 1 {
		t.Fatalf("GET /account/3pid: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", "/_matrix/client/r0/thirdparty/protocols", alice.Token, nil)
	if status != http.StatusOK || len(body) != 0 {
		t.Fatalf("GET /thirdparty/protocols: %d %v", status, body)
	}
	for _, p := range []string{"/account/3pid", "/thirdparty/protocols", "/voip/turnServer"} {
		status, body := ts.do(t, "GET", clientV3+p, "", nil)
		wantError(t, status, body, 401, "M_MISSING_TOKEN")
	}
}

func TestOpenIDRequestToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	bob := ts.register(t, "bob")
	path := func(userID string) string {
		return clientV3 + "/user/" + url.PathEscape(userID) + "/openid/request_token"
	}

	status, body := ts.do(t, "POST", path(alice.UserID), alice.Token, map[string]any{})
	token, _ := body["access_token"].(string)
	if status != http.StatusOK || token == "" || body["token_type"] != "Bearer" ||
		body["matrix_server_name"] != "test.local" || body["expires_in"] != float64(3600) || len(body) != 4 {
		t.Fatalf("request_token: %d %v", status, body)
	}
	if userID, ok := ts.API.openID.lookup(token); !ok || userID != alice.UserID {
		t.Fatalf("lookup(token) = %q, %v; want %s", userID, ok, alice.UserID)
	}
	// The OpenID token is no access token.
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", token, nil)
	wantError(t, status, body, 401, "M_UNKNOWN_TOKEN")

	status, body = ts.do(t, "POST", path(bob.UserID), alice.Token, map[string]any{})
	wantError(t, status, body, 403, "M_FORBIDDEN")
	status, body = ts.do(t, "POST", "/_matrix/client/r0/user/"+url.PathEscape("@alice:elsewhere")+"/openid/request_token", alice.Token, map[string]any{})
	wantError(t, status, body, 403, "M_FORBIDDEN")
	status, body = ts.do(t, "POST", path(alice.UserID), alice.Token, rawJSON("[]"))
	wantError(t, status, body, 400, "M_BAD_JSON")
	status, body = ts.do(t, "POST", path(alice.UserID), "", map[string]any{})
	wantError(t, status, body, 401, "M_MISSING_TOKEN")
}

func TestOpenIDTokensExpire(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	o := newOpenIDTokens(func() time.Time { return now })
	tok := o.issue("@alice:test.local")
	if u, ok := o.lookup(tok); !ok || u != "@alice:test.local" {
		t.Fatalf("lookup = %q, %v", u, ok)
	}
	if _, ok := o.lookup(tok + "x"); ok {
		t.Fatal("an unknown token was found")
	}
	now = now.Add(openIDTokenLifetime)
	if _, ok := o.lookup(tok); ok {
		t.Fatal("an expired token was found")
	}
}
