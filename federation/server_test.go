package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"

	"github.com/soma-chat/soma/persistence"
)

// serve runs one request through the full federation handler.
func (f *xmatrixFixture) serve(req *http.Request) (int, map[string]any) {
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, req)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

// signedGet is a GET from 127.0.0.1:1 to the fixture, signed for uri.
func (f *xmatrixFixture) signedGet(t *testing.T, uri string) *http.Request {
	t.Helper()
	fr := fclient.NewFederationRequest("GET", "127.0.0.1:1", "127.0.0.1:2", uri)
	if err := fr.Sign("127.0.0.1:1", f.originKey.KeyID, f.originKey.Private); err != nil {
		t.Fatal(err)
	}
	r, err := fr.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", uri, nil)
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	return req
}

func TestKeyEndpointsAnswerForThisServerAndRefuseBadInput(t *testing.T) {
	f := newXMatrixFixture(t)
	self := f.srv.self

	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/_matrix/key/v2/server", nil))
	var keys gomatrixserverlib.ServerKeys
	if err := json.Unmarshal(w.Body.Bytes(), &keys); err != nil || w.Code != 200 {
		t.Fatalf("key/v2/server: %d %s", w.Code, w.Body)
	}
	if checks, _ := gomatrixserverlib.CheckKeys(self.ServerName, time.Now(), keys); !checks.AllChecksOK {
		t.Fatalf("own key response fails its checks: %+v", checks)
	}
	if until := keys.ValidUntilTS.Time(); until.Before(time.Now().Add(50*time.Minute)) || until.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("valid_until_ts %v, want about an hour (key_validity) ahead", until)
	}

	// The notary answers for this server with its own response.
	code, body := f.serve(httptest.NewRequest("GET", "/_matrix/key/v2/query/127.0.0.1:2", nil))
	if list, _ := body["server_keys"].([]any); code != 200 || len(list) != 1 {
		t.Fatalf("notary for itself: %d %v", code, body)
	}
	code, body = f.serve(httptest.NewRequest("POST", "/_matrix/key/v2/query", strings.NewReader(`{"server_keys":{}}`)))
	if list, ok := body["server_keys"].([]any); code != 200 || !ok || len(list) != 0 {
		t.Fatalf("notary for nobody: %d %v", code, body)
	}

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		errcode                  string
	}{
		{"query without server_keys", "POST", "/_matrix/key/v2/query", `{}`, 400, "M_BAD_JSON"},
		{"query of a non-object", "POST", "/_matrix/key/v2/query", `{"server_keys":[1]}`, 400, "M_BAD_JSON"},
		{"query not JSON", "POST", "/_matrix/key/v2/query", `server_keys`, 400, "M_NOT_JSON"},
		{"bad server name", "GET", "/_matrix/key/v2/query/bad%20name", "", 400, "M_INVALID_PARAM"},
		{"bad minimum_valid_until_ts", "GET", "/_matrix/key/v2/query/127.0.0.1:2?minimum_valid_until_ts=soon", "", 400, "M_INVALID_PARAM"},
		{"unknown endpoint", "GET", "/_matrix/federation/v1/nothing", "", 404, "M_UNRECOGNIZED"},
		{"wrong method", "DELETE", "/_matrix/key/v2/server", "", 405, "M_UNRECOGNIZED"},
	} {
		code, body := f.serve(httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if code != tc.status || body["errcode"] != tc.errcode {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, body, tc.status, tc.errcode)
		}
	}
}

func TestProfileQueryAnswersForLocalUsersOnly(t *testing.T) {
	f := newXMatrixFixture(t)
	store := f.srv.profiles.(persistence.Store)
	ctx := context.Background()
	if err := store.CreateAccount(ctx, persistence.Account{Localpart: "alice", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := store.SetDisplayName(ctx, "alice", "Alice"); err != nil {
		t.Fatal(err)
	}
	if err := store.SetAvatarURL(ctx, "alice", "mxc://127.0.0.1:2/a"); err != nil {
		t.Fatal(err)
	}
	alice := url.QueryEscape("@alice:127.0.0.1:2")
	for _, tc := range []struct {
		name, query string
		status      int
		want        map[string]any
		errcode     string
	}{
		{"whole profile", "user_id=" + alice, 200, map[string]any{"displayname": "Alice", "avatar_url": "mxc://127.0.0.1:2/a"}, ""},
		{"one field", "user_id=" + alice + "&field=avatar_url", 200, map[string]any{"avatar_url": "mxc://127.0.0.1:2/a"}, ""},
		{"unknown field", "user_id=" + alice + "&field=email", 400, nil, "M_INVALID_PARAM"},
		{"no user_id", "field=displayname", 400, nil, "M_MISSING_PARAM"},
		{"not a user ID", "user_id=alice", 400, nil, "M_INVALID_PARAM"},
		{"another server's user", "user_id=" + url.QueryEscape("@alice:127.0.0.1:1"), 400, nil, "M_INVALID_PARAM"},
		{"unknown user", "user_id=" + url.QueryEscape("@nobody:127.0.0.1:2"), 404, nil, "M_NOT_FOUND"},
	} {
		code, body := f.serve(f.signedGet(t, "/_matrix/federation/v1/query/profile?"+tc.query))
		if code != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, code, body, tc.status)
			continue
		}
		if tc.errcode != "" && body["errcode"] != tc.errcode {
			t.Errorf("%s: %v, want %s", tc.name, body, tc.errcode)
		}
		if tc.want != nil && !mapsEqual(body, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, body, tc.want)
		}
	}
}

func mapsEqual(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
