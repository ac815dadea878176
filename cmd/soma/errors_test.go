package main

import (
	"net/http"
	"testing"
)

// TestBadInputGetsMatrixErrors: bad bodies, tokens and rooms get the
// right Matrix error, never a 500.
func TestBadInputGetsMatrixErrors(t *testing.T) {
	srv := startServer(t, t.TempDir())
	alice, mallory := srv.register("alice"), srv.register("mallory")
	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat"}, &created)
	room := pathEscape(created.RoomID)
	anon := srv.anonymous()
	bogus := srv.anonymous()
	bogus.token = "syt_not_a_token"

	cases := []struct {
		name   string
		c      *client
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"unknown endpoint", alice, "GET", "/_matrix/client/v3/nope", nil, 404, "M_UNRECOGNIZED"},
		{"no token", anon, "GET", "/_matrix/client/v3/sync", nil, 401, "M_MISSING_TOKEN"},
		{"bad token", bogus, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN"},
		{"send not JSON", alice, "PUT", "/_matrix/client/v3/rooms/" + room + "/send/m.room.message/x1", "{nope", 400, "M_NOT_JSON"},
		{"send array", alice, "PUT", "/_matrix/client/v3/rooms/" + room + "/send/m.room.message/x2", "[1]", 400, "M_BAD_JSON"},
		{"send float", alice, "PUT", "/_matrix/client/v3/rooms/" + room + "/send/m.room.message/x3", `{"n":1.5}`, 400, "M_BAD_JSON"},
		{"send too large", alice, "PUT", "/_matrix/client/v3/rooms/" + room + "/send/m.room.message/x4", map[string]any{"body": string(make([]byte, 70000))}, 413, "M_TOO_LARGE"},
		{"send to unknown room", alice, "PUT", "/_matrix/client/v3/rooms/%21nope%3Atest.local/send/m.room.message/x5", map[string]any{}, 404, "M_NOT_FOUND"},
		{"send to malformed room", alice, "PUT", "/_matrix/client/v3/rooms/nope/send/m.room.message/x6", map[string]any{}, 400, "M_INVALID_PARAM"},
		{"send as non-member", mallory, "PUT", "/_matrix/client/v3/rooms/" + room + "/send/m.room.message/x7", map[string]any{}, 403, "M_FORBIDDEN"},
		{"join invite-only room", mallory, "POST", "/_matrix/client/v3/rooms/" + room + "/join", map[string]any{}, 403, "M_FORBIDDEN"},
		{"read state as non-member", mallory, "GET", "/_matrix/client/v3/rooms/" + room + "/state", nil, 403, "M_FORBIDDEN"},
		{"messages as non-member", mallory, "GET", "/_matrix/client/v3/rooms/" + room + "/messages?dir=b", nil, 403, "M_FORBIDDEN"},
		{"messages bad dir", alice, "GET", "/_matrix/client/v3/rooms/" + room + "/messages?dir=x", nil, 400, "M_INVALID_PARAM"},
		{"messages bad token", alice, "GET", "/_matrix/client/v3/rooms/" + room + "/messages?dir=b&from=zzz", nil, 400, "M_INVALID_PARAM"},
		{"sync bad since", alice, "GET", "/_matrix/client/v3/sync?since=zzz", nil, 400, "M_INVALID_PARAM"},
		{"unknown event", alice, "GET", "/_matrix/client/v3/rooms/" + room + "/event/$nope", nil, 404, "M_NOT_FOUND"},
		{"unsupported room version", alice, "POST", "/_matrix/client/v3/createRoom", map[string]any{"room_version": "1"}, 400, "M_UNSUPPORTED_ROOM_VERSION"},
		{"bad preset", alice, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "party"}, 400, "M_BAD_JSON"},
		{"createRoom wrong type", alice, "POST", "/_matrix/client/v3/createRoom", map[string]any{"invite": "bob"}, 400, "M_BAD_JSON"},
		{"invite without user", alice, "POST", "/_matrix/client/v3/rooms/" + room + "/invite", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"power levels by non-admin", mallory, "PUT", "/_matrix/client/v3/rooms/" + room + "/state/m.room.power_levels/", map[string]any{}, 403, "M_FORBIDDEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var res struct {
				ErrCode string `json:"errcode"`
				Error   string `json:"error"`
			}
			status := tc.c.do(tc.method, tc.path, tc.body, &res)
			if status != tc.status || res.ErrCode != tc.code || res.Error == "" {
				t.Errorf("%s %s: %d %s %q, want %d %s", tc.method, tc.path, status, res.ErrCode, res.Error, tc.status, tc.code)
			}
			if status == http.StatusInternalServerError {
				t.Errorf("bad input must never be a 500")
			}
		})
	}
}
