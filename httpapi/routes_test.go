package httpapi

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/persistence/mediafiles"
)

// The route sweeps: every route of the router, found by walking it, so a
// route added later is checked without anyone listing it here.

// publicRoutes answer without an access token, as the spec says of each
// (or, for the admin page's static files, as a sign-in page must).
var publicRoutes = map[string]bool{
	"GET /.well-known/matrix/client":                                   true,
	"GET /.well-known/matrix/server":                                   true,
	"GET /_matrix/client/versions":                                     true,
	"GET /_matrix/client/{v}/login":                                    true,
	"POST /_matrix/client/{v}/login":                                   true,
	"POST /_matrix/client/{v}/register":                                true,
	"GET /_matrix/client/{v}/register/available":                       true,
	"GET /_matrix/client/{v}/profile/{userId}":                         true,
	"GET /_matrix/client/{v}/profile/{userId}/displayname":             true,
	"GET /_matrix/client/{v}/profile/{userId}/avatar_url":              true,
	"GET /_matrix/client/{v}/publicRooms":                              true,
	"GET /_matrix/client/{v}/directory/room/{roomAlias}":               true,
	"GET /_matrix/client/{v}/directory/list/room/{roomId}":             true,
	"GET /_matrix/media/v3/download/{serverName}/{mediaId}":            true,
	"GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}": true,
	"GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}":           true,
	"GET /_matrix/media/r0/download/{serverName}/{mediaId}":            true,
	"GET /_matrix/media/r0/download/{serverName}/{mediaId}/{fileName}": true,
	"GET /_matrix/media/r0/thumbnail/{serverName}/{mediaId}":           true,
	"GET /_synapse/admin/v1/register":                                  true,
	"POST /_synapse/admin/v1/register":                                 true,
	"GET /_soma/admin":                                                 true,
	"GET /_soma/admin/*":                                               true,
}

// newSweepServer has every optional part on, so that all routes exist.
func newSweepServer(t *testing.T) *testServer {
	t.Helper()
	files, err := mediafiles.Open(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, func(c *testServerConfig) {
		c.Options.Media = MediaOptions{Files: files, MaxUploadSize: 1 << 20}
		c.Options.RegistrationSharedSecret = "sweep-secret"
	})
}

// walkRoutes calls fn with every method and route pattern of the router,
// the r0 and v3 client prefixes written as {v}.
func walkRoutes(t *testing.T, api *Server, fn func(method, route string)) {
	t.Helper()
	seen := map[string]bool{}
	err := chi.Walk(api.router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.Replace(route, "/_matrix/client/v3/", "/_matrix/client/{v}/", 1)
		route = strings.Replace(route, "/_matrix/client/r0/", "/_matrix/client/{v}/", 1)
		if !seen[method+" "+route] {
			seen[method+" "+route] = true
			fn(method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 100 {
		t.Fatalf("walked %d routes: the walk is broken", len(seen))
	}
	for r, public := range publicRoutes {
		if public && !seen[r] {
			t.Errorf("publicRoutes lists %q, which is not a route", r)
		}
	}
}

// fillRoute turns a pattern into a path to call.
func fillRoute(route string) string {
	r := strings.NewReplacer(
		"{v}", "v3",
		"{roomId}", "%21room%3Atest.local",
		"{roomIdOrAlias}", "%21room%3Atest.local",
		"{roomAlias}", "%23alias%3Atest.local",
		"{userId}", "%40alice%3Atest.local",
		"{eventId}", "%24event",
		"{serverName}", "test.local",
		"*", "x",
	)
	path := r.Replace(route)
	// Any other parameter gets a plain value.
	for strings.Contains(path, "{") {
		i, j := strings.Index(path, "{"), strings.Index(path, "}")
		path = path[:i] + "x" + path[j+1:]
	}
	if strings.Contains(route, "/room_keys/keys") {
		path += "?version=1" // required, and checked before the body
	}
	return path
}

// TestEveryRouteNeedsATokenUnlessPublic: a request without a token gets
// 401 M_MISSING_TOKEN from every route but the public ones.
func TestEveryRouteNeedsATokenUnlessPublic(t *testing.T) {
	ts := newSweepServer(t)
	walkRoutes(t, ts.API, func(method, route string) {
		if publicRoutes[method+" "+route] {
			return
		}
		var body any
		if method == http.MethodPost || method == http.MethodPut {
			body = map[string]any{}
		}
		status, res := ts.do(t, method, fillRoute(route), "", body)
		if status != http.StatusUnauthorized || res["errcode"] != "M_MISSING_TOKEN" {
			t.Errorf("%s %s without a token: %d %v, want 401 M_MISSING_TOKEN (or list it in publicRoutes, citing the spec)", method, route, status, res["errcode"])
		}
	})
}

// TestEveryRouteAnswersBrokenJSONWithAMatrixError: a body that is not
// JSON, sent with a valid token, never makes a 500 or a non-Matrix error;
// routes that read a JSON body say M_NOT_JSON.
func TestEveryRouteAnswersBrokenJSONWithAMatrixError(t *testing.T) {
	ts := newSweepServer(t)
	n := 0
	walkRoutes(t, ts.API, func(method, route string) {
		if method != http.MethodPost && method != http.MethodPut {
			return
		}
		// A fresh account each time: some routes (logout, deactivate)
		// end the session they are called with.
		n++
		u := ts.register(t, fmt.Sprintf("sweep%d", n))
		status, res := ts.do(t, method, fillRoute(route), u.Token, rawJSON("{nope"))
		code, _ := res["errcode"].(string)
		switch {
		case status >= 500:
			t.Errorf("%s %s with a broken body: %d %v", method, route, status, res)
		case status >= 400 && (code == "" || res["error"] == nil):
			t.Errorf("%s %s with a broken body: %d without a Matrix error: %v", method, route, status, res)
		case status == http.StatusBadRequest && code != "M_NOT_JSON":
			t.Errorf("%s %s with a broken body: 400 %s, want M_NOT_JSON", method, route, code)
		}
	})
}
