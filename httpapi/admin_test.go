package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/persistence"
)

// fakeRoomStats stands in for *metrics.Actors: fixed live figures.
type fakeRoomStats []metrics.RoomStats

func (f fakeRoomStats) RoomStats() []metrics.RoomStats {
	out := make([]metrics.RoomStats, len(f))
	copy(out, f)
	return out
}

func (f fakeRoomStats) Room(roomID string) (metrics.RoomStats, bool) {
	for _, r := range f {
		if r.RoomID == roomID {
			return r, true
		}
	}
	return metrics.RoomStats{}, false
}

var adminTestRooms = fakeRoomStats{
	{RoomID: "!busy:test.local", EventsPerSecond: 9.5, MailboxDepth: 1, JoinedMembers: 2, MessagesProcessed: 300},
	{RoomID: "!crowded:test.local", EventsPerSecond: 0.5, MailboxDepth: 3, JoinedMembers: 500, MessagesProcessed: 10},
	{RoomID: "!stuck:test.local", EventsPerSecond: 0, MailboxDepth: 40, JoinedMembers: 1, MessagesProcessed: 1000},
}

// newAdminTestServer is a server whose live room figures are adminTestRooms.
func newAdminTestServer(t *testing.T) *testServer {
	return newTestServer(t, func(c *testServerConfig) { c.Options.RoomStats = adminTestRooms })
}

// createAdmin makes an admin account and logs it in, returning the token.
func (ts *testServer) createAdmin(t *testing.T, localpart string) string {
	t.Helper()
	ctx := context.Background()
	lp, err := ts.API.createAccount(ctx, newAccount{Localpart: localpart, Password: "pw-" + localpart, Admin: true})
	if err != nil {
		t.Fatalf("create admin: %v", err)
	}
	_, token, err := ts.API.issueDevice(ctx, lp, "", "")
	if err != nil {
		t.Fatalf("log admin in: %v", err)
	}
	return token
}

func (ts *testServer) login(t *testing.T, localpart, password string) (int, map[string]any) {
	t.Helper()
	return ts.do(t, "POST", clientV3+"/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": localpart}, "password": password,
	})
}

func TestAdminAPINeedsAnAdminToken(t *testing.T) {
	ts := newAdminTestServer(t)
	admin := ts.createAdmin(t, "root")
	user := ts.register(t, "alice")
	paths := []struct{ method, path string }{
		{"GET", adminPrefix + "/rooms"},
		{"GET", adminPrefix + "/rooms/" + url.PathEscape("!busy:test.local")},
		{"GET", adminPrefix + "/users"},
		{"POST", adminPrefix + "/users"},
		{"POST", adminPrefix + "/users/" + url.PathEscape("@alice:test.local") + "/deactivate"},
		{"POST", adminPrefix + "/users/" + url.PathEscape("@alice:test.local") + "/password"},
	}
	for _, p := range paths {
		status, body := ts.do(t, p.method, p.path, "", map[string]any{})
		wantError(t, status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		status, body = ts.do(t, p.method, p.path, "not-a-token", map[string]any{})
		wantError(t, status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		status, body = ts.do(t, p.method, p.path, user.Token, map[string]any{})
		wantError(t, status, body, http.StatusForbidden, "M_FORBIDDEN")
	}
	if status, body := ts.do(t, "GET", adminPrefix+"/rooms", admin, nil); status != http.StatusOK {
		t.Fatalf("admin GET /rooms = %d %v", status, body)
	}
	// Alice is untouched by the refused requests.
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", user.Token, nil); status != http.StatusOK {
		t.Fatalf("alice's whoami after refused admin requests = %d %v", status, body)
	}
}

func roomIDs(t *testing.T, body map[string]any) []string {
	t.Helper()
	rooms, ok := body["rooms"].([]any)
	if !ok {
		t.Fatalf("no rooms array in %v", body)
	}
	var ids []string
	for _, r := range rooms {
		ids = append(ids, r.(map[string]any)["room_id"].(string))
	}
	return ids
}

func TestAdminRoomsSortDescendingByTheChosenFigure(t *testing.T) {
	ts := newAdminTestServer(t)
	admin := ts.createAdmin(t, "root")
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"!busy:test.local", "!crowded:test.local", "!stuck:test.local"}},
		{"?sort=events_per_second", []string{"!busy:test.local", "!crowded:test.local", "!stuck:test.local"}},
		{"?sort=mailbox_depth", []string{"!stuck:test.local", "!crowded:test.local", "!busy:test.local"}},
		{"?sort=joined_members", []string{"!crowded:test.local", "!busy:test.local", "!stuck:test.local"}},
		{"?sort=messages_processed", []string{"!stuck:test.local", "!busy:test.local", "!crowded:test.local"}},
		{"?sort=mailbox_depth&limit=1", []string{"!stuck:test.local"}},
	}
	for _, tc := range tests {
		status, body := ts.do(t, "GET", adminPrefix+"/rooms"+tc.query, admin, nil)
		if status != http.StatusOK {
			t.Fatalf("GET /rooms%s = %d %v", tc.query, status, body)
		}
		if got := roomIDs(t, body); !equalStrings(got, tc.want) {
			t.Errorf("GET /rooms%s = %v, want %v", tc.query, got, tc.want)
		}
		if body["total"] != float64(3) {
			t.Errorf("GET /rooms%s total = %v, want 3", tc.query, body["total"])
		}
	}
	for _, q := range []string{"?sort=name", "?limit=0", "?limit=x"} {
		status, body := ts.do(t, "GET", adminPrefix+"/rooms"+q, admin, nil)
		wantError(t, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAdminRoomReportsLiveFiguresOr404(t *testing.T) {
	ts := newAdminTestServer(t)
	admin := ts.createAdmin(t, "root")
	status, body := ts.do(t, "GET", adminPrefix+"/rooms/"+url.PathEscape("!stuck:test.local"), admin, nil)
	if status != http.StatusOK || body["room_id"] != "!stuck:test.local" || body["mailbox_depth"] != float64(40) {
		t.Fatalf("GET /rooms/!stuck = %d %v", status, body)
	}
	status, body = ts.do(t, "GET", adminPrefix+"/rooms/"+url.PathEscape("!nowhere:test.local"), admin, nil)
	wantError(t, status, body, http.StatusNotFound, "M_NOT_FOUND")
	if body["error"] != "Unknown room" {
		t.Errorf("unknown room's error = %q", body["error"])
	}

	// A stored room without an active actor is passivated.
	empty := ""
	_, err := ts.Store.CommitEvents(context.Background(), persistence.CommitRequest{
		NewRoom: &persistence.NewRoom{RoomID: "!idle:test.local", Version: "11"},
		Events: []persistence.NewEvent{{
			EventID: "$create", JSON: []byte(`{}`), Type: "m.room.create", StateKey: &empty,
			Sender: "@root:test.local", Depth: 1, OriginServerTS: 1,
		}},
		Extremities: []string{"$create"}, Depth: 1,
	})
	if err != nil {
		t.Fatalf("store a room: %v", err)
	}
	status, body = ts.do(t, "GET", adminPrefix+"/rooms/"+url.PathEscape("!idle:test.local"), admin, nil)
	wantError(t, status, body, http.StatusNotFound, "M_NOT_FOUND")
	if msg, _ := body["error"].(string); !strings.Contains(msg, "passivated") {
		t.Errorf("passivated room's error = %q, want it to say passivated", msg)
	}
}

func TestAdminRoomListIsEmptyWithoutAMetricsSource(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.createAdmin(t, "root")
	status, body := ts.do(t, "GET", adminPrefix+"/rooms", admin, nil)
	if status != http.StatusOK || len(roomIDs(t, body)) != 0 || body["total"] != float64(0) {
		t.Fatalf("GET /rooms = %d %v, want no rooms", status, body)
	}
}

func userIDs(t *testing.T, body map[string]any) []string {
	t.Helper()
	users, ok := body["users"].([]any)
	if !ok {
		t.Fatalf("no users array in %v", body)
	}
	var ids []string
	for _, u := range users {
		ids = append(ids, u.(map[string]any)["user_id"].(string))
	}
	return ids
}

func TestAdminCreatesAndListsUsersInPages(t *testing.T) {
	ts := newAdminTestServer(t)
	admin := ts.createAdmin(t, "root")
	for _, u := range []struct {
		name  string
		admin bool
	}{{"carol", false}, {"Bob", true}} {
		status, body := ts.do(t, "POST", adminPrefix+"/users", admin, map[string]any{"username": u.name, "password": "secret-" + u.name, "admin": u.admin})
		if status != http.StatusOK {
			t.Fatalf("create %s = %d %v", u.name, status, body)
		}
	}
	status, body := ts.do(t, "POST", adminPrefix+"/users", admin, map[string]any{"username": "carol", "password": "x"})
	wantError(t, status, body, http.StatusBadRequest, "M_USER_IN_USE")
	status, body = ts.do(t, "POST", adminPrefix+"/users", admin, map[string]any{"username": "dave"})
	wantError(t, status, body, http.StatusBadRequest, "M_MISSING_PARAM")

	// The new account logs in with its password (usernames are lower-cased).
	if status, body := ts.login(t, "bob", "secret-Bob"); status != http.StatusOK {
		t.Fatalf("bob's login = %d %v", status, body)
	}

	status, body = ts.do(t, "GET", adminPrefix+"/users?limit=2", admin, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /users = %d %v", status, body)
	}
	if got, want := userIDs(t, body), []string{"@bob:test.local", "@carol:test.local"}; !equalStrings(got, want) {
		t.Fatalf("first page = %v, want %v", got, want)
	}
	first := body["users"].([]any)[0].(map[string]any)
	if first["admin"] != true || first["deactivated"] != false || first["created_ts"].(float64) <= 0 {
		t.Fatalf("bob listed as %v, want an active admin with created_ts", first)
	}
	next, _ := body["next_token"].(string)
	if next == "" {
		t.Fatalf("first page has no next_token: %v", body)
	}
	status, body = ts.do(t, "GET", adminPrefix+"/users?limit=2&from="+url.QueryEscape(next), admin, nil)
	if got, want := userIDs(t, body), []string{"@root:test.local"}; status != http.StatusOK || !equalStrings(got, want) {
		t.Fatalf("second page = %d %v, want %v", status, body, want)
	}
	if _, ok := body["next_token"]; ok {
		t.Fatalf("last page has a next_token: %v", body)
	}
}

func TestAdminDeactivationEndsLoginAndTokens(t *testing.T) {
	ts := newAdminTestServer(t)
	admin := ts.createAdmin(t, "root")
	alice := ts.register(t, "alice")
	bob := ts.register(t, "bob")
	// Alice's token is cached by a request before the deactivation.
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil); status != http.StatusOK {
		t.Fatalf("whoami = %d %v", status, body)
	}
	status, body := ts.do(t, "POST", adminPrefix+"/users/"+url.PathEscape(alice.UserID)+"/deactivate", admin, nil)
	if status != http.StatusOK || body["deactivated"] != true {
		t.Fatalf("deactivate = %d %v", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil)
	wantError(t, status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	status, body = ts.login(t, "alice", alice.Password)
	wantError(t, status, body, http.StatusForbidden, "M_USER_DEACTIVATED")
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", bob.Token, nil); status != http.StatusOK {
		t.Fatalf("bob's whoami after alice's deactivation = %d %v", status, body)
	}
	_, body = ts.do(t, "GET", adminPrefix+"/users", admin, nil)
	for _, u := range body["users"].([]any) {
		u := u.(map[string]any)
		if want := u["user_id"] == alice.UserID; u["deactivated"] != want {
			t.Errorf("%v listed with deactivated=%v", u["user_id"], u["deactivated"])
		}
	}
	status, body = ts.do(t, "POST", adminPrefix+"/users/"+url.PathEscape("@nobody:test.local")+"/deactivate", admin, nil)
	wantError(t, status, body, http.StatusNotFound, "M_NOT_FOUND")
}

func TestAdminPasswordResetLogsOutUnlessAskedNotTo(t *testing.T) {
	ts := newAdminTestServer(t)
	admin := ts.createAdmin(t, "root")
	alice := ts.register(t, "alice")
	path := adminPrefix + "/users/" + url.PathEscape(alice.UserID) + "/password"

	status, body := ts.do(t, "POST", path, admin, map[string]any{"new_password": "second", "logout_devices": false})
	if status != http.StatusOK {
		t.Fatalf("reset = %d %v", status, body)
	}
	if status, body := ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil); status != http.StatusOK {
		t.Fatalf("whoami after a reset keeping devices = %d %v", status, body)
	}
	status, body = ts.login(t, "alice", alice.Password)
	wantError(t, status, body, http.StatusForbidden, "M_FORBIDDEN")
	if status, body := ts.login(t, "alice", "second"); status != http.StatusOK {
		t.Fatalf("login with the new password = %d %v", status, body)
	}

	status, body = ts.do(t, "POST", path, admin, map[string]any{"new_password": "third"})
	if status != http.StatusOK {
		t.Fatalf("reset = %d %v", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/account/whoami", alice.Token, nil)
	wantError(t, status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	if status, body := ts.login(t, "alice", "third"); status != http.StatusOK {
		t.Fatalf("login with the third password = %d %v", status, body)
	}
	status, body = ts.do(t, "POST", path, admin, map[string]any{})
	wantError(t, status, body, http.StatusBadRequest, "M_MISSING_PARAM")
}

// idleActor is a room actor stand-in: it only receives.
type idleActor struct{}

func (idleActor) Receive(actor.Context) {}

func TestAdminRoomsReadTheNodesLiveActorMetrics(t *testing.T) {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	t.Cleanup(system.Shutdown)
	live := metrics.New(metrics.Options{MaxRoomSeries: 10})
	a := live.NewActivation(metrics.KindRoom, "!live:test.local")
	pid := system.Root.Spawn(a.Props(func() actor.Actor { return idleActor{} }))
	a.PublishRoom(metrics.RoomHead{Epoch: 3, Depth: 7, JoinedMembers: 2, ForwardExtremities: 1, StateEvents: 6})

	ts := newTestServer(t, func(c *testServerConfig) { c.Options.RoomStats = live })
	admin := ts.createAdmin(t, "root")
	path := adminPrefix + "/rooms/" + url.PathEscape("!live:test.local")
	deadline := time.Now().Add(30 * time.Second) // generous: a loaded -race run is slow
	status, body := ts.do(t, "GET", path, admin, nil)
	for status != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the actor starts asynchronously
		status, body = ts.do(t, "GET", path, admin, nil)
	}
	if status != http.StatusOK || body["epoch"] != float64(3) || body["joined_members"] != float64(2) || body["state_events"] != float64(6) {
		t.Fatalf("GET /rooms/!live = %d %v", status, body)
	}
	status, body = ts.do(t, "GET", adminPrefix+"/rooms", admin, nil)
	if got := roomIDs(t, body); status != http.StatusOK || !equalStrings(got, []string{"!live:test.local"}) {
		t.Fatalf("GET /rooms = %d %v", status, body)
	}

	// Passivated: the actor stops and the room leaves the live view.
	if err := system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for status == http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		status, body = ts.do(t, "GET", path, admin, nil)
	}
	wantError(t, status, body, http.StatusNotFound, "M_NOT_FOUND")
}
