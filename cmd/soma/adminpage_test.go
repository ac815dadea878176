package main

import (
	"net/http"
	"os"
	"testing"
	"time"
)

// adminPageDir holds the browser script (page.mjs) and its pinned
// playwright-core, which drives the machine's Chromium (Debian's chromium
// package; .ci/run installs it) and downloads no browser of its own.
const adminPageDir = "testdata/adminpage"

// TestAdminPageInABrowser opens the live admin page (/_soma/admin/) in
// headless Chromium and uses it as an operator would while a client sends:
// a non-admin is refused; rooms appear and rank by load without a reload;
// a room's detail shows its actor's answer; an injected panic appears as a
// restart with its reason; idle rooms passivate and leave the page; sign
// out. The steps and their checks are in testdata/adminpage/page.mjs.
func TestAdminPageInABrowser(t *testing.T) {
	chromium := requireTool(t, "chromium", "the admin page test drives Debian's headless Chromium (apt-get install chromium)")
	requireTool(t, "node", "Node 20+ with npm runs the admin page test")
	ensureNodeModules(t, adminPageDir, "playwright-core")

	srv := startServer(t, t.TempDir(),
		"SOMA_REGISTRATION_SHARED_SECRET="+operatorSecret,
		"SOMA_DEBUG_FAULT_INJECTION=true",
		"SOMA_ROOMS_IDLE_TIMEOUT=10s", // long enough for the checks before it under load
		"SOMA_RATE_LIMITS_ENABLED=false",
	)
	const adminPassword = "correct horse admin"
	if status, reply := srv.sharedSecretRegister("admin", adminPassword, true); status != 200 {
		t.Fatalf("creating the admin: %d %v", status, reply)
	}
	alice := srv.register("alice") // her password is "correct horse alice"
	admin := srv.login("admin")
	checkFaultEndpointRefusals(t, admin, alice)

	env := []string{
		"SOMA_URL=" + srv.baseURL,
		"CHROMIUM=" + chromium,
		"ADMIN_USER=admin", "ADMIN_PASSWORD=" + adminPassword,
		"USER_NAME=alice", "USER_PASSWORD=correct horse alice", "USER_TOKEN=" + alice.token,
		"FAULT_INJECTION=true",
	}
	if dir := os.Getenv("SOMA_TEST_SCREENSHOTS"); dir != "" {
		env = append(env, "SCREENSHOT_DIR="+dir)
	}
	runNodeScript(t, srv, adminPageDir, 3*time.Minute, env, []string{"adminpage:"}, "page.mjs")
}

// checkFaultEndpointRefusals: POST /rooms/{roomId}/fault refuses
// non-admins, bad bodies and unknown rooms with Matrix errors.
func checkFaultEndpointRefusals(t *testing.T, admin, nonAdmin *client) {
	t.Helper()
	var room struct {
		RoomID string `json:"room_id"`
	}
	nonAdmin.must("POST", "/_matrix/client/v3/createRoom", map[string]any{}, &room)
	fault := "/_soma/admin/v1/rooms/" + pathEscape(room.RoomID) + "/fault"
	for _, c := range []struct {
		who    *client
		path   string
		body   any
		status int
		code   string
	}{
		{nonAdmin, fault, map[string]any{}, http.StatusForbidden, "M_FORBIDDEN"},
		{admin, fault, "{not json", http.StatusBadRequest, "M_NOT_JSON"},
		{admin, "/_soma/admin/v1/rooms/" + pathEscape("!nowhere:test.local") + "/fault", map[string]any{}, http.StatusNotFound, "M_NOT_FOUND"},
	} {
		var e struct {
			Errcode string `json:"errcode"`
		}
		if got := c.who.do("POST", c.path, c.body, &e); got != c.status || e.Errcode != c.code {
			t.Errorf("POST %s as %s with %v: %d %s, want %d %s", c.path, c.who.userID, c.body, got, e.Errcode, c.status, c.code)
		}
	}
}
