package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/sqlite"
)

// xmatrixFixture is a server "127.0.0.1:2" whose keyring already holds the
// key of "127.0.0.1:1" (stored as if fetched). Nothing listens on port 1:
// the refetch gomatrixserverlib tries after a failed check is refused at
// once, on loopback.
type xmatrixFixture struct {
	srv       *Server
	originKey *SigningKey
}

func newXMatrixFixture(t *testing.T) *xmatrixFixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "soma.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	selfKey, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	originKey, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	err = store.StoreServerKeys(ctx, []persistence.ServerKey{{
		ServerName: "127.0.0.1:1", KeyID: string(originKey.KeyID), PublicKey: originKey.Public(),
		ValidUntilTS: time.Now().Add(time.Hour).UnixMilli(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	self := &Identity{ServerName: "127.0.0.1:2", Key: selfKey, KeyValidity: time.Hour}
	ring := NewKeyRing(self, store, NewClient(self, ClientOptions{AllowPrivateNetworks: true}), zerolog.Nop())
	return &xmatrixFixture{srv: NewServer(ServerOptions{Self: self, KeyRing: ring, Profiles: store, Log: zerolog.Nop()}), originKey: originKey}
}

// signed builds a PUT from 127.0.0.1:1 to 127.0.0.1:2 whose signature covers
// signedBody, carrying sentBody.
func (f *xmatrixFixture) signed(t *testing.T, signedBody any, sentBody []byte) *http.Request {
	t.Helper()
	fr := fclient.NewFederationRequest("PUT", "127.0.0.1:1", "127.0.0.1:2", "/_matrix/federation/v1/send/1")
	if signedBody != nil {
		if err := fr.SetContent(signedBody); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.Sign("127.0.0.1:1", f.originKey.KeyID, f.originKey.Private); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("PUT", "/_matrix/federation/v1/send/1", bytes.NewReader(sentBody))
	r, err := fr.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func TestXMatrixHandsOnlyVerifiedRequestsToTheHandler(t *testing.T) {
	f := newXMatrixFixture(t)
	var called bool
	var gotOrigin spec.ServerName
	var gotBody []byte
	var verified []spec.ServerName // what the senders would hear (BackOnline)
	f.srv.heard = func(o spec.ServerName) { verified = append(verified, o) }
	h := f.srv.requireXMatrix(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called, gotOrigin = true, OriginFrom(r.Context())
		gotBody, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	body := map[string]any{"pdus": []any{}, "origin": "127.0.0.1:1"}
	raw, _ := json.Marshal(body)
	unsigned := httptest.NewRequest("PUT", "/_matrix/federation/v1/send/1", strings.NewReader("{not json"))

	for _, tc := range []struct {
		name    string
		req     *http.Request
		status  int
		errcode string
	}{
		{"signed as sent", f.signed(t, body, raw), 200, ""},
		{"body changed after signing", f.signed(t, body, []byte(`{"pdus":[{"evil":true}],"origin":"127.0.0.1:1"}`)), 401, "M_UNAUTHORIZED"},
		{"signed without a body, sent with one", f.signed(t, nil, raw), 401, "M_UNAUTHORIZED"},
		{"no header, body not JSON: refused before the body is read", unsigned, 401, "M_UNAUTHORIZED"},
		{"signed header, body not JSON", f.signed(t, body, []byte("{not json")), 400, "M_NOT_JSON"},
		{"body too large", f.signed(t, body, bytes.Repeat([]byte(" "), maxRequestBody+1)), 413, "M_TOO_LARGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called, gotOrigin, gotBody, verified = false, "", nil, nil
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req)
			if w.Code != tc.status {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body, tc.status)
			}
			if tc.status == 200 {
				if !called || gotOrigin != "127.0.0.1:1" || !bytes.Equal(gotBody, raw) {
					t.Fatalf("handler called %v with origin %q body %q", called, gotOrigin, gotBody)
				}
				if len(verified) != 1 || verified[0] != "127.0.0.1:1" {
					t.Fatalf("ServerOptions.Heard was told %v, want 127.0.0.1:1 once", verified)
				}
				return
			}
			if called || len(verified) > 0 {
				t.Fatalf("the handler ran (%v) or ServerOptions.Heard was told %v for a refused request", called, verified)
			}
			var e matrixError
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.ErrCode != tc.errcode || e.Err == "" {
				t.Fatalf("body %s, want errcode %s", w.Body, tc.errcode)
			}
		})
	}
}
