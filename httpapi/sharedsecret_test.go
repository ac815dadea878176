package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"testing"
	"time"
)

const (
	testSharedSecret = "a-shared-secret-of-some-length"
	sharedSecretPath = "/_synapse/admin/v1/register"
)

// newSharedSecretServer is a test server with shared-secret registration
// on and self-registration off (the one does not need the other), whose
// nonces expire by clock.
func newSharedSecretServer(t *testing.T, clock *fakeClock) *testServer {
	t.Helper()
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.RegistrationEnabled = false
		c.Options.RegistrationSharedSecret = testSharedSecret
	})
	ts.API.nonces.now = clock.now // before any request
	return ts
}

// testMAC computes the MAC as Synapse's register_new_matrix_user does,
// independently of the server's code.
func testMAC(secret, nonce, username, password string, admin bool, userType string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(nonce + "\x00" + username + "\x00" + password + "\x00"))
	if admin {
		m.Write([]byte("admin"))
	} else {
		m.Write([]byte("notadmin"))
	}
	if userType != "" {
		m.Write([]byte("\x00" + userType))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (ts *testServer) nonce(t *testing.T) string {
	t.Helper()
	status, body := ts.do(t, "GET", sharedSecretPath, "", nil)
	n, _ := body["nonce"].(string)
	if status != http.StatusOK || n == "" {
		t.Fatalf("GET nonce: %d %v", status, body)
	}
	return n
}

// sharedSecretBody is a well-formed request for username with a correct MAC.
func sharedSecretBody(nonce, username, password string, admin bool) map[string]any {
	return map[string]any{
		"nonce": nonce, "username": username, "password": password, "admin": admin,
		"mac": testMAC(testSharedSecret, nonce, username, password, admin, ""),
	}
}

// TestRegistrationMACMatchesSynapses: vectors computed with Python's hmac
// module exactly as Synapse's register_new_matrix_user computes them.
func TestRegistrationMACMatchesSynapses(t *testing.T) {
	for _, tc := range []struct {
		username, password string
		admin              bool
		userType, want     string
	}{
		{"pepper_roni", "pizza", true, "", "c5ae7687c3a4ef3ce931a5b54a1de3c1416a6d49"},
		{"pepper_roni", "pizza", false, "", "bf1b5bfa070ead407eb915a4609b457d28cb1f58"},
		{"Pepper_Roni", "pïzza", false, "bot", "4660b9c34c851e2c0fd9dfab82433c0e3d4fc16b"},
	} {
		got := hex.EncodeToString(registrationMAC(testSharedSecret, "thisisanonce", tc.username, tc.password, tc.admin, tc.userType))
		if got != tc.want {
			t.Errorf("MAC(%s, %s, admin=%v, %q) = %s, want %s", tc.username, tc.password, tc.admin, tc.userType, got, tc.want)
		}
	}
}

func TestSharedSecretRegistrationCreatesAnAdminWhoCanLogIn(t *testing.T) {
	t.Parallel()
	ts := newSharedSecretServer(t, newFakeClock())
	req := sharedSecretBody(ts.nonce(t), "Root", "correct horse", true)
	req["displayname"] = "The Operator"
	status, body := ts.do(t, "POST", sharedSecretPath, "", req)
	if status != http.StatusOK {
		t.Fatalf("register: %d %v", status, body)
	}
	// The username is lower-cased into the localpart, as /register does.
	if body["user_id"] != "@root:test.local" || body["home_server"] != "test.local" || body["device_id"] == "" {
		t.Fatalf("reply: %v", body)
	}
	token, _ := body["access_token"].(string)
	status, who := ts.do(t, "GET", clientV3+"/account/whoami", token, nil)
	if status != http.StatusOK || who["user_id"] != "@root:test.local" || who["device_id"] != body["device_id"] {
		t.Fatalf("whoami with the token: %d %v", status, who)
	}
	acc, err := ts.Store.GetAccount(context.Background(), "root")
	if err != nil || !acc.IsAdmin {
		t.Fatalf("account: %+v, %v; want an admin", acc, err)
	}
	status, prof := ts.do(t, "GET", clientV3+"/profile/@root:test.local", "", nil)
	if status != http.StatusOK || prof["displayname"] != "The Operator" {
		t.Fatalf("profile: %d %v", status, prof)
	}
	status, login := ts.do(t, "POST", clientV3+"/login", "", passwordLogin("root", "correct horse"))
	if status != http.StatusOK || login["user_id"] != "@root:test.local" {
		t.Fatalf("login: %d %v", status, login)
	}
}

func TestSharedSecretRegistrationOfANonAdmin(t *testing.T) {
	t.Parallel()
	ts := newSharedSecretServer(t, newFakeClock())
	nonce := ts.nonce(t)
	req := sharedSecretBody(nonce, "bot", "pw", false)
	// user_type is covered by the MAC, then ignored.
	req["user_type"] = "bot"
	req["mac"] = testMAC(testSharedSecret, nonce, "bot", "pw", false, "bot")
	status, body := ts.do(t, "POST", sharedSecretPath, "", req)
	if status != http.StatusOK {
		t.Fatalf("register: %d %v", status, body)
	}
	acc, err := ts.Store.GetAccount(context.Background(), "bot")
	if err != nil || acc.IsAdmin {
		t.Fatalf("account: %+v, %v; want a non-admin", acc, err)
	}
	status, prof := ts.do(t, "GET", clientV3+"/profile/@bot:test.local", "", nil)
	if status != http.StatusOK || prof["displayname"] != "bot" {
		t.Fatalf("profile without displayname: %d %v, want the localpart", status, prof)
	}
}

func TestSharedSecretRegistrationRefusals(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	ts := newSharedSecretServer(t, clock)
	taken := sharedSecretBody(ts.nonce(t), "taken", "pw", false)
	if status, body := ts.do(t, "POST", sharedSecretPath, "", taken); status != http.StatusOK {
		t.Fatalf("register taken: %d %v", status, body)
	}

	tests := []struct {
		name       string
		body       func(nonce string) map[string]any
		wantStatus int
		wantCode   string
	}{
		{"wrong secret", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", true)
			b["mac"] = testMAC("not-the-shared-secret-at-all", n, "eve", "pw", true, "")
			return b
		}, 403, "M_FORBIDDEN"},
		{"admin flag flipped after signing", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", false)
			b["admin"] = true
			return b
		}, 403, "M_FORBIDDEN"},
		{"user_type added after signing", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", false)
			b["user_type"] = "support"
			return b
		}, 403, "M_FORBIDDEN"},
		{"mac not hex", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", true)
			b["mac"] = "zz"
			return b
		}, 403, "M_FORBIDDEN"},
		{"no mac", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", true)
			delete(b, "mac")
			return b
		}, 400, "M_BAD_JSON"},
		{"no username", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", true)
			delete(b, "username")
			return b
		}, 400, "M_BAD_JSON"},
		{"no password", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", true)
			delete(b, "password")
			return b
		}, 400, "M_BAD_JSON"},
		{"NUL in username", func(n string) map[string]any { return sharedSecretBody(n, "e\x00ve", "pw", true) }, 400, "M_INVALID_PARAM"},
		{"admin not a boolean", func(n string) map[string]any {
			b := sharedSecretBody(n, "eve", "pw", true)
			b["admin"] = "yes"
			return b
		}, 400, "M_BAD_JSON"},
		// Past the MAC, the checks /register makes.
		{"username taken", func(n string) map[string]any { return sharedSecretBody(n, "Taken", "pw", false) }, 400, "M_USER_IN_USE"},
		{"invalid username", func(n string) map[string]any { return sharedSecretBody(n, "eve smith", "pw", false) }, 400, "M_INVALID_USERNAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ts.do(t, "POST", sharedSecretPath, "", tt.body(ts.nonce(t)))
			wantError(t, status, body, tt.wantStatus, tt.wantCode)
		})
	}
	if _, err := ts.Store.GetAccount(context.Background(), "eve"); err == nil {
		t.Fatal("a refused request created eve")
	}
}

func TestSharedSecretNoncesAreSingleUseAndExpire(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	ts := newSharedSecretServer(t, clock)
	wantUnrecognised := func(t *testing.T, status int, body map[string]any) {
		t.Helper()
		wantError(t, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		if body["error"] != "unrecognised nonce" {
			t.Fatalf("error = %v, want unrecognised nonce", body["error"])
		}
	}

	t.Run("reused after success", func(t *testing.T) {
		nonce := ts.nonce(t)
		if status, body := ts.do(t, "POST", sharedSecretPath, "", sharedSecretBody(nonce, "once", "pw", false)); status != http.StatusOK {
			t.Fatalf("first use: %d %v", status, body)
		}
		status, body := ts.do(t, "POST", sharedSecretPath, "", sharedSecretBody(nonce, "twice", "pw", false))
		wantUnrecognised(t, status, body)
	})
	t.Run("spent by a wrong MAC", func(t *testing.T) {
		nonce := ts.nonce(t)
		bad := sharedSecretBody(nonce, "guess", "pw", true)
		bad["mac"] = testMAC("a-guess-at-the-shared-secret", nonce, "guess", "pw", true, "")
		status, body := ts.do(t, "POST", sharedSecretPath, "", bad)
		wantError(t, status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = ts.do(t, "POST", sharedSecretPath, "", sharedSecretBody(nonce, "guess", "pw", true))
		wantUnrecognised(t, status, body)
	})
	t.Run("never issued", func(t *testing.T) {
		status, body := ts.do(t, "POST", sharedSecretPath, "", sharedSecretBody("made-up", "forged", "pw", true))
		wantUnrecognised(t, status, body)
	})
	t.Run("expired", func(t *testing.T) {
		late := ts.nonce(t)
		clock.advance(nonceTTL - time.Second)
		inTime := ts.nonce(t)
		clock.advance(time.Second)
		status, body := ts.do(t, "POST", sharedSecretPath, "", sharedSecretBody(late, "late", "pw", false))
		wantUnrecognised(t, status, body)
		if status, body := ts.do(t, "POST", sharedSecretPath, "", sharedSecretBody(inTime, "intime", "pw", false)); status != http.StatusOK {
			t.Fatalf("a nonce younger than the TTL: %d %v", status, body)
		}
	})
}

func TestSharedSecretRegistrationIsOffWithoutASecret(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t) // self-registration on, no secret
	status, body := ts.do(t, "GET", sharedSecretPath, "", nil)
	wantError(t, status, body, http.StatusNotFound, "M_UNRECOGNIZED")
	status, body = ts.do(t, "POST", sharedSecretPath, "", sharedSecretBody("any", "root", "pw", true))
	wantError(t, status, body, http.StatusNotFound, "M_UNRECOGNIZED")
}

func TestNonceStoreKeepsAtMostMaxNonces(t *testing.T) {
	clock := newFakeClock()
	ns := newNonceStore(clock.now)
	first := ns.issue()
	for range maxNonces {
		ns.issue()
	}
	if n := ns.len(); n != maxNonces {
		t.Fatalf("%d nonces kept, want %d", n, maxNonces)
	}
	if ns.take(first) {
		t.Fatal("the oldest nonce survived the cap")
	}
	clock.advance(nonceTTL)
	ns.issue()
	if n := ns.len(); n != 1 {
		t.Fatalf("%d nonces kept after the TTL, want only the new one", n)
	}
}
