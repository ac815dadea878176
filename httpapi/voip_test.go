package httpapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTURNServerNotConfiguredIsEmpty(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	status, body := ts.do(t, "GET", clientV3+"/voip/turnServer", alice.Token, nil)
	if status != http.StatusOK || len(body) != 0 {
		t.Fatalf("GET /voip/turnServer without TURN: %d %v, want 200 {}", status, body)
	}
}

func TestTURNServerSharedSecretCredentials(t *testing.T) {
	t.Parallel()
	uris := []string{"turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"}
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.TURN = TURNOptions{URIs: uris, SharedSecret: "coturn-secret", UserLifetime: 2 * time.Hour}
	})
	alice := ts.register(t, "alice")
	before := time.Now()
	status, body := ts.do(t, "GET", "/_matrix/client/r0/voip/turnServer", alice.Token, nil)
	if status != http.StatusOK || body["ttl"] != float64(7200) || len(body) != 4 {
		t.Fatalf("GET /voip/turnServer: %d %v", status, body)
	}
	got, _ := body["uris"].([]any)
	if len(got) != 2 || got[0] != uris[0] || got[1] != uris[1] {
		t.Fatalf("uris = %v, want %v", got, uris)
	}
	username, _ := body["username"].(string)
	expiry, user, _ := strings.Cut(username, ":")
	exp, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || user != alice.UserID {
		t.Fatalf("username = %q, want <expiry>:%s", username, alice.UserID)
	}
	if lo, hi := before.Add(2*time.Hour).Unix(), time.Now().Add(2*time.Hour).Unix(); exp < lo || exp > hi {
		t.Fatalf("expiry %d not in [%d, %d]", exp, lo, hi)
	}
	mac := hmac.New(sha1.New, []byte("coturn-secret"))
	mac.Write([]byte(username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); body["password"] != want {
		t.Fatalf("password = %v, want base64(HMAC-SHA1(secret, username)) = %s", body["password"], want)
	}
}

func TestTURNServerStaticCredentials(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.TURN = TURNOptions{URIs: []string{"turn:t.example.org"}, Username: "soma", Password: "pw", UserLifetime: time.Hour}
	})
	alice := ts.register(t, "alice")
	status, body := ts.do(t, "GET", clientV3+"/voip/turnServer", alice.Token, nil)
	if status != http.StatusOK || body["username"] != "soma" || body["password"] != "pw" || body["ttl"] != float64(3600) {
		t.Fatalf("GET /voip/turnServer: %d %v", status, body)
	}
}

// A fixed case, computed independently (Python's hmac module).
func TestTURNCredentialsMatchTheCoturnConvention(t *testing.T) {
	u, p := turnCredentials("north", "@alice:example.org", time.Unix(1443779631, 0))
	if u != "1443779631:@alice:example.org" || p != "8UEQexfdhsgCaPlmAo/GVjLRbV4=" {
		t.Fatalf("credentials = %q, %q", u, p)
	}
}
