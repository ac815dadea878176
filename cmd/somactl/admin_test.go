package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/httpapi"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/backends"
)

// fakeRooms stands in for the node's *metrics.Actors.
type fakeRooms []metrics.RoomStats

func (f fakeRooms) RoomStats() []metrics.RoomStats { return append([]metrics.RoomStats(nil), f...) }

func (f fakeRooms) Room(id string) (metrics.RoomStats, bool) {
	for _, r := range f {
		if r.RoomID == id {
			return r, true
		}
	}
	return metrics.RoomStats{}, false
}

// adminServer is the client API over a fresh SQLite store, with an admin
// ("root") and a user ("alice") logged in.
type adminServer struct {
	*httptest.Server
	store              persistence.Store
	rootToken, aliceTk string
}

func newAdminServer(t *testing.T) *adminServer {
	t.Helper()
	ctx := context.Background()
	store, err := backends.Open(ctx, backends.Config{Backend: "sqlite", SQLitePath: filepath.Join(t.TempDir(), "soma.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	rooms := fakeRooms{
		{RoomID: "!quiet:example.org", EventsPerSecond: 0.1, MailboxDepth: 7, JoinedMembers: 3},
		{RoomID: "!hot:example.org", EventsPerSecond: 12.5, MailboxDepth: 2, JoinedMembers: 40},
	}
	api := httpapi.NewServer(httpapi.Options{ServerName: "example.org", RoomStats: rooms}, store, nil, nil, zerolog.Nop())
	s := &adminServer{Server: httptest.NewServer(api.Handler()), store: store}
	t.Cleanup(s.Close)
	for _, u := range []struct {
		lp    string
		admin bool
	}{{"root", true}, {"alice", false}} {
		// A cheap hash: the real cost takes seconds under -race.
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+u.lp), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateAccount(ctx, persistence.Account{Localpart: u.lp, PasswordHash: string(h), IsAdmin: u.admin, CreatedTS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	s.rootToken = s.login(t, "root", "pw-root")
	s.aliceTk = s.login(t, "alice", "pw-alice")
	return s
}

// login returns an access token, or "" when the login is refused.
func (s *adminServer) login(t *testing.T, user, password string) string {
	t.Helper()
	body := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"` + user + `"},"password":"` + password + `"}`
	resp, err := http.Post(s.URL+"/_matrix/client/v3/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out.AccessToken
}

// whoami returns the status of GET /account/whoami with the token.
func (s *adminServer) whoami(t *testing.T, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/_matrix/client/v3/account/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRoomsListsTheHottestFirst(t *testing.T) {
	s := newAdminServer(t)
	code, out, errOut := runCmd(t, "", "rooms", "-url", s.URL, "-token", s.rootToken)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	hot, quiet := strings.Index(out, "!hot:example.org"), strings.Index(out, "!quiet:example.org")
	if hot < 0 || quiet < 0 || hot > quiet || !strings.Contains(out, "12.50") || !strings.Contains(out, "2 of 2 active rooms") {
		t.Fatalf("rooms printed:\n%s", out)
	}
	code, out, errOut = runCmd(t, "", "rooms", "-url", s.URL, "-token", s.rootToken, "-sort", "mailbox_depth", "-limit", "1")
	if code != 0 || !strings.Contains(out, "!quiet:example.org") || strings.Contains(out, "!hot:example.org") {
		t.Fatalf("rooms -sort mailbox_depth -limit 1: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "", "rooms", "-url", s.URL, "-token", s.rootToken, "-sort", "name")
	if code != 1 || !strings.Contains(errOut, "M_INVALID_PARAM") {
		t.Fatalf("rooms -sort name: exit %d: %s", code, errOut)
	}
}

func TestAdminCommandsNeedAnAdminToken(t *testing.T) {
	s := newAdminServer(t)
	code, _, errOut := runCmd(t, "", "rooms", "-url", s.URL, "-token", s.aliceTk)
	if code != 1 || !strings.Contains(errOut, "403 M_FORBIDDEN") {
		t.Fatalf("rooms as a non-admin: exit %d: %s", code, errOut)
	}
	t.Setenv(adminTokenEnv, "")
	code, _, errOut = runCmd(t, "", "users", "-url", s.URL)
	if code != 2 || !strings.Contains(errOut, adminTokenEnv) {
		t.Fatalf("users without a token: exit %d: %s", code, errOut)
	}
	t.Setenv(adminTokenEnv, s.rootToken)
	code, out, errOut := runCmd(t, "", "users", "-url", s.URL)
	if code != 0 || !strings.Contains(out, "@root:example.org") {
		t.Fatalf("users with $%s: exit %d\n%s%s", adminTokenEnv, code, out, errOut)
	}
}

func TestRoomShowsOneRoomOrFails(t *testing.T) {
	s := newAdminServer(t)
	code, out, errOut := runCmd(t, "", "room", "-url", s.URL, "-token", s.rootToken, "!hot:example.org")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got metrics.RoomStats
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.RoomID != "!hot:example.org" || got.JoinedMembers != 40 {
		t.Fatalf("room printed %q (%v)", out, err)
	}
	// Flags may follow the room ID.
	code, _, errOut = runCmd(t, "", "room", "!gone:example.org", "-url", s.URL, "-token", s.rootToken)
	if code != 1 || !strings.Contains(errOut, "404 M_NOT_FOUND") {
		t.Fatalf("unknown room: exit %d: %s", code, errOut)
	}
	code, _, _ = runCmd(t, "", "room", "-url", s.URL, "-token", s.rootToken)
	if code != 2 {
		t.Fatalf("room without an ID: exit %d, want 2", code)
	}
}

func TestUsersPagesThroughEveryAccount(t *testing.T) {
	s := newAdminServer(t)
	code, out, errOut := runCmd(t, "", "users", "-url", s.URL, "-token", s.rootToken)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "@alice:example.org") || !strings.HasPrefix(lines[2], "@root:example.org") ||
		!strings.Contains(lines[2], "yes") {
		t.Fatalf("users printed:\n%s", out)
	}
	code, out, _ = runCmd(t, "", "users", "-url", s.URL, "-token", s.rootToken, "-limit", "1")
	if code != 0 || strings.Contains(out, "@root") || !strings.Contains(out, "@alice") {
		t.Fatalf("users -limit 1: exit %d\n%s", code, out)
	}
}

func TestDeactivateEndsTheAccountsSessions(t *testing.T) {
	s := newAdminServer(t)
	if s.whoami(t, s.aliceTk) != http.StatusOK {
		t.Fatal("alice's token does not work before the deactivation")
	}
	code, out, errOut := runCmd(t, "", "deactivate", "-url", s.URL, "-token", s.rootToken, "@alice:example.org")
	if code != 0 || !strings.Contains(out, "deactivated @alice:example.org") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if got := s.whoami(t, s.aliceTk); got != http.StatusUnauthorized {
		t.Fatalf("alice's old token answers %d after deactivation, want 401", got)
	}
	if tok := s.login(t, "alice", "pw-alice"); tok != "" {
		t.Fatal("alice logged in after deactivation")
	}
	code, _, errOut = runCmd(t, "", "deactivate", "-url", s.URL, "-token", s.rootToken, "@nobody:example.org")
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("deactivate an unknown user: exit %d: %s", code, errOut)
	}
}

func TestResetPasswordLogsOutTheDevices(t *testing.T) {
	s := newAdminServer(t)
	code, out, errOut := runCmd(t, "new secret\n", "reset-password", "-url", s.URL, "-token", s.rootToken, "@alice:example.org")
	if code != 0 || !strings.Contains(out, "logged out") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if got := s.whoami(t, s.aliceTk); got != http.StatusUnauthorized {
		t.Fatalf("alice's old token answers %d after the reset, want 401", got)
	}
	if s.login(t, "alice", "pw-alice") != "" {
		t.Fatal("the old password still logs in")
	}
	if s.login(t, "alice", "new secret") == "" {
		t.Fatal("the new password does not log in")
	}
}
