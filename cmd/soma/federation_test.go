package main

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/federation"
)

// fedServer is a soma process with federation on, named after its
// federation listener "127.0.0.1:<port>": an IP literal with a port, which
// gomatrixserverlib's resolver uses as it is (no well-known, no SRV).
type fedServer struct {
	*server
	name    spec.ServerName
	fedURL  string
	dataDir string
	env     []string // what it was started with, to start it again
}

// startFedServer writes a self-signed TLS pair with somactl generate-tls
// (the development path) and starts a server on backend b with federation
// on and certificate checks off.
func startFedServer(t *testing.T, b backend, extraEnv ...string) *fedServer {
	t.Helper()
	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	name := ln.Addr().String()
	ln.Close() // the server binds it again: its name must carry the port
	env := append(b.env(t, dataDir), "SOMA_SERVER_NAME="+name, "SOMA_FEDERATION_LISTEN="+name, "SOMA_FEDERATION_SKIP_TLS_VERIFY=true", "SOMA_FEDERATION_ALLOW_PRIVATE_NETWORKS=true")
	env = append(env, extraEnv...)
	if out, err := runSomactl(t, dataDir, env, "generate-tls"); err != nil {
		t.Fatalf("somactl generate-tls: %v\n%s", err, out)
	}
	s := startServer(t, dataDir, env...)
	if s.FederationURL != "https://"+name {
		t.Fatalf("federation listens at %q, want https://%s", s.FederationURL, name)
	}
	return &fedServer{server: s, name: spec.ServerName(name), fedURL: s.FederationURL, dataDir: dataDir, env: env}
}

// signingKey is the server's key as it is on disk.
func (f *fedServer) signingKey(t *testing.T) *federation.SigningKey {
	t.Helper()
	k, err := federation.LoadSigningKey(filepath.Join(f.dataDir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// insecureClient accepts the servers' self-signed certificates.
var insecureClient = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// fedGet sends req (already carrying any Authorization) to the federation
// listener and returns the status and JSON body.
func fedDo(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := insecureClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s %s: %d %q is not a JSON object", req.Method, req.URL, resp.StatusCode, raw)
	}
	return resp.StatusCode, body
}

func fedGet(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fedDo(t, req)
}

// signedRequest builds a request to a federation listener signed as
// origin with key, carrying content as JSON when it is not nil.
func signedRequest(t *testing.T, baseURL, method string, origin, destination spec.ServerName, key *federation.SigningKey, uri string, content any) *http.Request {
	t.Helper()
	fr := fclient.NewFederationRequest(method, origin, destination, uri)
	if content != nil {
		if err := fr.SetContent(content); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.Sign(origin, key.KeyID, key.Private); err != nil {
		t.Fatal(err)
	}
	req, err := fr.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(baseURL + uri)
	req.URL, req.Host = u, u.Host
	return req
}

// signedGet builds a GET to dest's federation listener signed as origin
// with key; the X-Matrix header names destination.
func signedGet(t *testing.T, baseURL string, origin, destination spec.ServerName, key *federation.SigningKey, uri string) *http.Request {
	t.Helper()
	return signedRequest(t, baseURL, "GET", origin, destination, key, uri, nil)
}

// verifyKeyResponse checks that raw is server's key response holding key
// and signed by every one of signers (name → public key).
func verifyKeyResponse(t *testing.T, raw []byte, server spec.ServerName, key *federation.SigningKey, signers map[spec.ServerName]*federation.SigningKey) {
	t.Helper()
	var keys gomatrixserverlib.ServerKeys
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	if keys.ServerName != server {
		t.Fatalf("server_name %q, want %q", keys.ServerName, server)
	}
	if got := keys.VerifyKeys[key.KeyID].Key; string(got) != string(key.Public()) {
		t.Fatalf("verify_keys[%s] = %x, want the key on disk", key.KeyID, got)
	}
	if keys.ValidUntilTS.Time().Before(time.Now()) {
		t.Fatalf("valid_until_ts %d is past", keys.ValidUntilTS)
	}
	if keys.OldVerifyKeys == nil {
		t.Fatal("old_verify_keys is missing")
	}
	for name, k := range signers {
		if err := gomatrixserverlib.VerifyJSON(string(name), k.KeyID, k.Public(), raw); err != nil {
			t.Fatalf("signature of %s: %v", name, err)
		}
	}
}

// TestFederationKeysProfilesAndXMatrix runs two servers with different
// names, A on SQLite and B on PostgreSQL, talking over TLS on loopback.
func TestFederationKeysProfilesAndXMatrix(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	backends := backendsUnderTest()
	retired, err := federation.GenerateSigningKey() // a key B signed with before
	if err != nil {
		t.Fatal(err)
	}
	retiredAt := time.Now().Add(-time.Hour).UnixMilli()
	a := startFedServer(t, backends[0], "SOMA_FEDERATION_WELL_KNOWN_SERVER=fed.example.org:443")
	b := startFedServer(t, backends[1], fmt.Sprintf("SOMA_FEDERATION_OLD_VERIFY_KEYS=%s %s %d",
		retired.KeyID, base64.RawStdEncoding.EncodeToString(retired.Public()), retiredAt))
	aKey, bKey := a.signingKey(t), b.signingKey(t)

	t.Run("version and well-known", func(t *testing.T) {
		code, body := fedGet(t, a.fedURL+"/_matrix/federation/v1/version")
		if server, _ := body["server"].(map[string]any); code != 200 || server["name"] != "Soma" {
			t.Fatalf("version: %d %v", code, body)
		}
		var wk map[string]string
		a.anonymous().must("GET", "/.well-known/matrix/server", nil, &wk)
		if wk["m.server"] != "fed.example.org:443" {
			t.Fatalf("A's well-known: %v", wk)
		}
		var e map[string]string
		if code := b.anonymous().do("GET", "/.well-known/matrix/server", nil, &e); code != 404 || e["errcode"] != "M_NOT_FOUND" {
			t.Fatalf("B without delegation: %d %v", code, e)
		}
	})

	t.Run("each server publishes its own keys", func(t *testing.T) {
		for _, s := range []struct {
			srv *fedServer
			key *federation.SigningKey
		}{{a, aKey}, {b, bKey}} {
			resp, err := insecureClient.Get(s.srv.fedURL + "/_matrix/key/v2/server")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			verifyKeyResponse(t, raw, s.srv.name, s.key, map[spec.ServerName]*federation.SigningKey{s.srv.name: s.key})
		}
	})

	t.Run("B's retired key is in its old_verify_keys, through A's notary too", func(t *testing.T) {
		code, body := fedGet(t, a.fedURL+"/_matrix/key/v2/query/"+string(b.name))
		list, _ := body["server_keys"].([]any)
		if code != 200 || len(list) != 1 {
			t.Fatalf("notary query: %d %v", code, body)
		}
		raw, _ := json.Marshal(list[0])
		var keys gomatrixserverlib.ServerKeys
		if err := json.Unmarshal(raw, &keys); err != nil {
			t.Fatal(err)
		}
		old, ok := keys.OldVerifyKeys[retired.KeyID]
		if !ok || string(old.Key) != string(retired.Public()) || int64(old.ExpiredTS) != retiredAt {
			t.Fatalf("old_verify_keys = %+v, want %s expired at %d", keys.OldVerifyKeys, retired.KeyID, retiredAt)
		}
	})

	t.Run("A notarises B's keys, fetched from B", func(t *testing.T) {
		both := map[spec.ServerName]*federation.SigningKey{a.name: aKey, b.name: bKey}
		check := func(code int, body map[string]any) {
			t.Helper()
			list, _ := body["server_keys"].([]any)
			if code != 200 || len(list) != 1 {
				t.Fatalf("notary query: %d %v", code, body)
			}
			raw, _ := json.Marshal(list[0])
			verifyKeyResponse(t, raw, b.name, bKey, both)
		}
		check(fedGet(t, a.fedURL+"/_matrix/key/v2/query/"+string(b.name)))
		future := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
		check(fedGet(t, a.fedURL+"/_matrix/key/v2/query/"+string(b.name)+"?minimum_valid_until_ts="+future))
		req, _ := http.NewRequest("POST", a.fedURL+"/_matrix/key/v2/query",
			strings.NewReader(`{"server_keys":{"`+string(b.name)+`":{"`+string(bKey.KeyID)+`":{"minimum_valid_until_ts":`+future+`}}}}`))
		check(fedDo(t, req))

		// A unreachable server has no keys: an empty list, not an error.
		code, body := fedGet(t, a.fedURL+"/_matrix/key/v2/query/127.0.0.1:1")
		if list, ok := body["server_keys"].([]any); code != 200 || !ok || len(list) != 0 {
			t.Fatalf("unreachable server: %d %v", code, body)
		}
		req, _ = http.NewRequest("POST", a.fedURL+"/_matrix/key/v2/query", strings.NewReader("{not json"))
		if code, body := fedDo(t, req); code != 400 || body["errcode"] != "M_NOT_JSON" {
			t.Fatalf("bad JSON: %d %v", code, body)
		}
	})

	alice := b.register("alice")
	alice.must("PUT", "/_matrix/client/v3/profile/"+alice.userID+"/displayname", map[string]any{"displayname": "Alice of B"}, nil)
	alice.must("PUT", "/_matrix/client/v3/profile/"+alice.userID+"/avatar_url", map[string]any{"avatar_url": "mxc://b/alice"}, nil)

	t.Run("a user on A reads the profile of a user on B", func(t *testing.T) {
		bob := a.register("bob")
		var p map[string]string
		bob.must("GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.userID), nil, &p)
		if p["displayname"] != "Alice of B" || p["avatar_url"] != "mxc://b/alice" {
			t.Fatalf("remote profile: %v", p)
		}
		p = nil
		bob.must("GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.userID)+"/displayname", nil, &p)
		if len(p) != 1 || p["displayname"] != "Alice of B" {
			t.Fatalf("remote displayname: %v", p)
		}
		var e map[string]string
		if code := bob.do("GET", "/_matrix/client/v3/profile/@nobody:"+string(b.name), nil, &e); code != 404 || e["errcode"] != "M_NOT_FOUND" {
			t.Fatalf("unknown remote user: %d %v", code, e)
		}
		e = nil
		if code := bob.do("GET", "/_matrix/client/v3/profile/@carol:127.0.0.1:1", nil, &e); code != 502 || e["errcode"] != "M_UNKNOWN" {
			t.Fatalf("user of an unreachable server: %d %v", code, e)
		}
	})

	t.Run("B refuses requests that A did not sign for B", func(t *testing.T) {
		uri := "/_matrix/federation/v1/query/profile?user_id=" + url.QueryEscape(alice.userID)
		// The honest request, for contrast: it works.
		if code, body := fedDo(t, signedGet(t, b.fedURL, a.name, b.name, aKey, uri)); code != 200 || body["displayname"] != "Alice of B" {
			t.Fatalf("a correctly signed request: %d %v", code, body)
		}
		unknownKey, err := federation.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		forged := signedGet(t, b.fedURL, a.name, b.name, aKey, uri)
		other := signedGet(t, b.fedURL, a.name, b.name, aKey, uri+"&field=displayname")
		_, _, _, _, otherSig := fclient.ParseAuthorization(other.Header.Get("Authorization"))
		_, _, _, _, sig := fclient.ParseAuthorization(forged.Header.Get("Authorization"))
		forged.Header.Set("Authorization", strings.Replace(forged.Header.Get("Authorization"), sig, otherSig, 1))
		noHeader := signedGet(t, b.fedURL, a.name, b.name, aKey, uri)
		noHeader.Header.Del("Authorization")

		for name, req := range map[string]*http.Request{
			"forged signature":   forged,
			"wrong origin":       signedGet(t, b.fedURL, b.name, b.name, aKey, uri),
			"wrong destination":  signedGet(t, b.fedURL, a.name, "127.0.0.1:1", aKey, uri),
			"unknown key":        signedGet(t, b.fedURL, a.name, b.name, unknownKey, uri),
			"no X-Matrix header": noHeader,
		} {
			code, body := fedDo(t, req)
			if code != 401 || body["errcode"] != "M_UNAUTHORIZED" || body["error"] == "" {
				t.Errorf("%s: %d %v, want 401 M_UNAUTHORIZED", name, code, body)
			}
			if _, leaked := body["displayname"]; leaked {
				t.Errorf("%s: the refused request got the profile: %v", name, body)
			}
		}
	})
}
