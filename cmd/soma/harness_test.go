package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/soma-chat/soma/cmd/internal/somaproc"
	"github.com/soma-chat/soma/persistence/pgtest"
)

// The end-to-end tests build the real binaries once and run the server as
// a separate process, so that they can kill it (SIGKILL) and start it again.
var somaBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "soma-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	somaBinary, err = somaproc.Build(dir, true, "somactl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// backend is a storage configuration a test server runs on.
type backend struct {
	name string
	env  func(t *testing.T, dataDir string) []string
}

func backendsUnderTest() []backend {
	return []backend{
		{"sqlite", func(t *testing.T, dataDir string) []string { return nil }},
		{"postgres", func(t *testing.T, dataDir string) []string {
			return []string{"SOMA_DATABASE_BACKEND=postgres", "SOMA_DATABASE_POSTGRES_DSN=" + pgtest.DSN(t)}
		}},
	}
}

// forEachBackend runs a test against a server on each backend, both at
// once: the end-to-end tests spend most of their time waiting on a server,
// and this package is the long pole of make test.
func forEachBackend(t *testing.T, test func(t *testing.T, env []string, dataDir string)) {
	runOnBackends(t, true, test)
}

// forEachBackendInTurn is forEachBackend one backend after the other, for
// tests that load the machine by themselves (a client SDK's crypto).
func forEachBackendInTurn(t *testing.T, test func(t *testing.T, env []string, dataDir string)) {
	runOnBackends(t, false, test)
}

func runOnBackends(t *testing.T, parallel bool, test func(t *testing.T, env []string, dataDir string)) {
	for _, b := range backendsUnderTest() {
		t.Run(b.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			dataDir := t.TempDir()
			test(t, b.env(t, dataDir), dataDir)
		})
	}
}

// server is a soma process under test.
type server struct {
	*somaproc.Server
	t       *testing.T
	baseURL string
}

// startServer runs the binary with its data in dataDir on a free loopback
// port and waits until it is ready.
func startServer(t *testing.T, dataDir string, env ...string) *server {
	t.Helper()
	p := somaproc.Start(t, somaBinary, append([]string{"SOMA_DATA_DIR=" + dataDir, "SOMA_SERVER_NAME=test.local"}, env...)...)
	return &server{Server: p, t: t, baseURL: p.BaseURL}
}

// client speaks the Client-Server API as one user.
type client struct {
	t      testing.TB
	base   string
	token  string
	userID string
	http   *http.Client
}

func (s *server) anonymous() *client {
	return &client{t: s.t, base: s.baseURL, http: &http.Client{Timeout: 60 * time.Second}}
}

// do sends a request and decodes the JSON reply into out (if non-nil);
// it returns the status code.
func (c *client) do(method, path string, body any, out any) int {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// must is do that fails the test unless the status is 200.
func (c *client) must(method, path string, body any, out any) {
	c.t.Helper()
	var raw json.RawMessage
	if code := c.do(method, path, body, &raw); code != http.StatusOK {
		c.t.Fatalf("%s %s: status %d: %s", method, path, code, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatal(err)
		}
	}
}

// register creates a user through the user-interactive flow.
func (s *server) register(username string) *client {
	c := s.anonymous()
	var uia struct {
		Session string `json:"session"`
	}
	if code := c.do("POST", "/_matrix/client/v3/register", map[string]any{"username": username, "password": "correct horse " + username}, &uia); code != http.StatusUnauthorized {
		s.t.Fatalf("register without auth: status %d, want 401", code)
	}
	var reg struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	c.must("POST", "/_matrix/client/v3/register", map[string]any{
		"username": username, "password": "correct horse " + username,
		"auth": map[string]any{"type": "m.login.dummy", "session": uia.Session},
	}, &reg)
	c.token, c.userID = reg.AccessToken, reg.UserID
	return c
}

// login logs an existing user in on a new device.
func (s *server) login(username string) *client {
	c := s.anonymous()
	var res struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	c.must("POST", "/_matrix/client/v3/login", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": username},
		"password":   "correct horse " + username,
	}, &res)
	c.token, c.userID = res.AccessToken, res.UserID
	return c
}

func pathEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "!", "%21"), ":", "%3A")
}

func (c *client) send(roomID, txn, body string) string {
	c.t.Helper()
	var res struct {
		EventID string `json:"event_id"`
	}
	c.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/send/m.room.message/"+txn,
		map[string]any{"msgtype": "m.text", "body": body}, &res)
	return res.EventID
}

// syncResp is the part of /sync the tests read.
type syncResp struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events    []event `json:"events"`
				Limited   bool    `json:"limited"`
				PrevBatch string  `json:"prev_batch"`
			} `json:"timeline"`
			State struct {
				Events []event `json:"events"`
			} `json:"state"`
		} `json:"join"`
		Invite map[string]struct {
			InviteState struct {
				Events []event `json:"events"`
			} `json:"invite_state"`
		} `json:"invite"`
		Leave map[string]struct {
			Timeline struct {
				Events []event `json:"events"`
			} `json:"timeline"`
		} `json:"leave"`
	} `json:"rooms"`
}

type event struct {
	EventID  string         `json:"event_id"`
	Type     string         `json:"type"`
	Sender   string         `json:"sender"`
	StateKey *string        `json:"state_key"`
	Content  map[string]any `json:"content"`
	RoomID   string         `json:"room_id"`
	Unsigned map[string]any `json:"unsigned"`
}

func (c *client) sync(since string, timeoutMS int) syncResp {
	c.t.Helper()
	path := fmt.Sprintf("/_matrix/client/v3/sync?timeout=%d", timeoutMS)
	if since != "" {
		path += "&since=" + since
	}
	var res syncResp
	c.must("GET", path, nil, &res)
	return res
}

// doQuiet is do for requests that may fail at the transport level (the
// server being killed): it returns 0 instead of failing the test.
func (c *client) doQuiet(method, path string, body any, out any) int {
	j, err := json.Marshal(body)
	if err != nil {
		return 0
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(j))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(raw, out) != nil {
		return 0
	}
	return resp.StatusCode
}

// history pages /messages backwards to the start of the room, oldest last.
func (c *client) history(roomID string) []event {
	c.t.Helper()
	var all []event
	from := ""
	for {
		var page struct {
			Chunk []event `json:"chunk"`
			End   string  `json:"end"`
		}
		path := "/_matrix/client/v3/rooms/" + pathEscape(roomID) + "/messages?dir=b&limit=7"
		if from != "" {
			path += "&from=" + from
		}
		c.must("GET", path, nil, &page)
		all = append(all, page.Chunk...)
		if page.End == "" || len(page.Chunk) == 0 {
			return all
		}
		from = page.End
	}
}

func (c *client) syncFilter(filter string) syncResp {
	c.t.Helper()
	return c.syncFilterSince(filter, "")
}

func (c *client) syncFilterSince(filter, since string) syncResp {
	c.t.Helper()
	var res syncResp
	c.must("GET", "/_matrix/client/v3/sync?since="+since+"&filter="+url.QueryEscape(filter), nil, &res)
	return res
}
