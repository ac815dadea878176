package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/backends"
)

// Shared by the httpapi tests: a real Server over a fresh SQLite store,
// spoken to over HTTP as a client would.

// TestMain makes password hashing cheap: the real bcrypt cost takes
// seconds per hash under -race. This is the package's only TestMain.
func TestMain(m *testing.M) {
	hashPassword = func(p string) (string, error) {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		return string(h), err
	}
	os.Exit(m.Run())
}

// clientV3 prefixes client API paths.
const clientV3 = "/_matrix/client/v3"

// testServerConfig is what newTestServer builds the Server from. Store is
// already open when a configure func runs, so that it can build actors
// over it.
type testServerConfig struct {
	Options Options
	Store   persistence.Store
	Rooms   RoomRequester
	Syncer  SyncWaiter
}

type testServer struct {
	*httptest.Server
	API   *Server
	Store persistence.Store
}

// newTestServer starts a server named test.local with registration on;
// configure funcs may change anything before it is built. Everything is
// closed when the test ends.
func newTestServer(t testing.TB, configure ...func(*testServerConfig)) *testServer {
	t.Helper()
	cfg := testServerConfig{
		Options: Options{ServerName: "test.local", RegistrationEnabled: true},
		Store:   openTestStore(t),
	}
	for _, f := range configure {
		f(&cfg)
	}
	api := NewServer(cfg.Options, cfg.Store, cfg.Rooms, cfg.Syncer, zerolog.Nop())
	ts := &testServer{Server: httptest.NewServer(api.Handler()), API: api, Store: cfg.Store}
	t.Cleanup(ts.Close)
	return ts
}

func openTestStore(t testing.TB) persistence.Store {
	t.Helper()
	st, err := backends.Open(context.Background(), backends.Config{
		Backend:    "sqlite",
		SQLitePath: filepath.Join(t.TempDir(), "soma.db"),
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// rawJSON is a request body sent as it is, for malformed bodies.
type rawJSON string

// do sends a request and decodes the JSON object it gets back. path is
// relative to the server (use clientV3+"/..."); token "" sends none; body
// nil sends none, rawJSON is sent verbatim, anything else as JSON.
func (ts *testServer) do(t testing.TB, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case rawJSON:
		rd = strings.NewReader(string(b))
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: status %d, body is not a JSON object: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// wantError fails unless the reply is the Matrix error code with status.
func wantError(t testing.TB, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["errcode"] != wantCode {
		t.Fatalf("got %d %v, want %d %s", status, body, wantStatus, wantCode)
	}
}

// testUser is a registered, logged-in user.
type testUser struct {
	UserID, Localpart, Password, Token, DeviceID string
}

// register creates an account through the UIA round trip (401, then
// m.login.dummy with the session) and returns it logged in.
func (ts *testServer) register(t testing.TB, localpart string) testUser {
	t.Helper()
	u := testUser{Localpart: localpart, Password: "pw-" + localpart}
	req := map[string]any{"username": localpart, "password": u.Password}
	status, body := ts.do(t, "POST", clientV3+"/register", "", req)
	if status != http.StatusUnauthorized {
		t.Fatalf("register %s: first round got %d %v, want 401", localpart, status, body)
	}
	req["auth"] = map[string]any{"type": "m.login.dummy", "session": body["session"]}
	status, body = ts.do(t, "POST", clientV3+"/register", "", req)
	if status != http.StatusOK {
		t.Fatalf("register %s: got %d %v", localpart, status, body)
	}
	u.UserID, _ = body["user_id"].(string)
	u.Token, _ = body["access_token"].(string)
	u.DeviceID, _ = body["device_id"].(string)
	if u.UserID == "" || u.Token == "" || u.DeviceID == "" {
		t.Fatalf("register %s: incomplete reply %v", localpart, body)
	}
	return u
}
