package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soma-chat/soma/persistence/backends"
)

const operatorSecret = "an-operator-secret-for-tests"

// sharedSecretRegister creates an account as Synapse's
// register_new_matrix_user does: a nonce, then the HMAC-SHA1 of the request.
func (s *server) sharedSecretRegister(username, password string, admin bool) (status int, reply map[string]any) {
	c := s.anonymous()
	var n struct {
		Nonce string `json:"nonce"`
	}
	c.must("GET", "/_synapse/admin/v1/register", nil, &n)
	role := "notadmin"
	if admin {
		role = "admin"
	}
	mac := hmac.New(sha1.New, []byte(operatorSecret))
	mac.Write([]byte(n.Nonce + "\x00" + username + "\x00" + password + "\x00" + role))
	status = c.do("POST", "/_synapse/admin/v1/register", map[string]any{
		"nonce": n.Nonce, "username": username, "password": password, "admin": admin,
		"mac": hex.EncodeToString(mac.Sum(nil)),
	}, &reply)
	return status, reply
}

// storeConfigOf is the database a server ran on with env.
func storeConfigOf(t *testing.T, env []string, dataDir string) backends.Config {
	t.Helper()
	cfg := backends.Config{Backend: backends.SQLite, SQLitePath: filepath.Join(dataDir, "soma.db")}
	for _, kv := range env {
		if dsn, ok := strings.CutPrefix(kv, "SOMA_DATABASE_POSTGRES_DSN="); ok {
			cfg = backends.Config{Backend: backends.Postgres, PostgresDSN: dsn}
		}
	}
	return cfg
}

// TestOperatorSurface: the probes answer, and an operator with the shared
// secret creates an admin (registration being closed) who can log in;
// request logs name the request and the user, never the secrets.
func TestOperatorSurface(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env,
			"SOMA_REGISTRATION_ENABLED=false",
			"SOMA_REGISTRATION_SHARED_SECRET="+operatorSecret,
			"SOMA_LOG_LEVEL=debug",
		)...)
		anon := srv.anonymous()

		var health map[string]any
		if code := anon.do("GET", "/health", nil, &health); code != http.StatusOK || health["status"] != "ok" {
			t.Fatalf("/health: %d %v", code, health)
		}
		var ready struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}
		if code := anon.do("GET", "/ready", nil, &ready); code != http.StatusOK || ready.Status != "ok" ||
			ready.Checks["database"] != "ok" || ready.Checks["actors"] != "ok" {
			t.Fatalf("/ready: %d %+v", code, ready)
		}

		const password = "correct horse root"
		status, reply := srv.sharedSecretRegister("root", password, true)
		if status != http.StatusOK || reply["user_id"] != "@root:test.local" || reply["access_token"] == "" {
			t.Fatalf("shared-secret registration: %d %v", status, reply)
		}
		root := srv.login("root") // "correct horse root"
		var who struct {
			UserID string `json:"user_id"`
		}
		root.must("GET", "/_matrix/client/v3/account/whoami", nil, &who)
		if who.UserID != "@root:test.local" {
			t.Fatalf("whoami: %+v", who)
		}
		// Fault injection is off unless debug.fault_injection says so.
		var e struct {
			Errcode string `json:"errcode"`
			Error   string `json:"error"`
		}
		if code := root.do("POST", "/_soma/admin/v1/rooms/"+pathEscape("!any:test.local")+"/fault", map[string]any{}, &e); code != http.StatusForbidden ||
			!strings.Contains(e.Error, "debug.fault_injection") {
			t.Fatalf("fault injection by default: %d %+v, want 403 naming debug.fault_injection", code, e)
		}
		// Self-registration stays closed.
		var refused map[string]any
		if code := anon.do("POST", "/_matrix/client/v3/register", map[string]any{"username": "eve", "password": "pw"}, &refused); code != http.StatusForbidden {
			t.Fatalf("open registration: %d %v", code, refused)
		}

		srv.Stop()
		logs := srv.Logs()
		for _, secret := range []string{operatorSecret, password, root.token, reply["access_token"].(string)} {
			if strings.Contains(logs, secret) {
				t.Fatalf("the log holds a secret (%q):\n%s", secret, logs)
			}
		}
		var sawRegister, sawWhoami bool
		for _, line := range strings.Split(logs, "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) != nil || l["message"] != "request" {
				continue
			}
			if id, _ := l["request_id"].(string); id == "" {
				t.Fatalf("access line without request_id: %s", line)
			}
			switch l["route"] {
			case "/_synapse/admin/v1/register":
				sawRegister = sawRegister || l["method"] == "POST" && l["status"] == float64(200)
			case "/_matrix/client/v3/account/whoami":
				sawWhoami = sawWhoami || l["user_id"] == "@root:test.local"
			}
		}
		if !sawRegister || !sawWhoami {
			t.Fatalf("access lines missing (register %v, whoami with user_id %v):\n%s", sawRegister, sawWhoami, logs)
		}

		st, err := backends.Open(context.Background(), storeConfigOf(t, env, dataDir))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		acc, err := st.GetAccount(context.Background(), "root")
		if err != nil || !acc.IsAdmin {
			t.Fatalf("root's account: %+v, %v; want an admin", acc, err)
		}
	})
}

// TestSharedSecretRegistrationIsOffByDefault: without a secret the
// endpoint does not exist.
func TestSharedSecretRegistrationIsOffByDefault(t *testing.T) {
	srv := startServer(t, t.TempDir())
	var body map[string]any
	if code := srv.anonymous().do("GET", "/_synapse/admin/v1/register", nil, &body); code != http.StatusNotFound || body["errcode"] != "M_UNRECOGNIZED" {
		t.Fatalf("GET /_synapse/admin/v1/register: %d %v", code, body)
	}
}
