package storagetest

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// Remote servers' signing keys: keys are kept per (server, key ID) and
// updated with newer knowledge, never dropped; the newest key response
// per server is kept byte for byte.

func testServerKeys(t *testing.T, s persistence.Store) {
	pub := bytes.Repeat([]byte{7}, 32)
	cur := persistence.ServerKey{ServerName: "b.example:8448", KeyID: "ed25519:new", PublicKey: pub, ValidUntilTS: 2000}
	old := persistence.ServerKey{ServerName: "b.example:8448", KeyID: "ed25519:old", PublicKey: bytes.Repeat([]byte{1}, 32), ExpiredTS: 1500}
	other := persistence.ServerKey{ServerName: "c.example", KeyID: "ed25519:new", PublicKey: bytes.Repeat([]byte{9}, 32), ValidUntilTS: 3000}
	noErr(t, "StoreServerKeys", s.StoreServerKeys(bg, []persistence.ServerKey{cur, old, other}))
	noErr(t, "StoreServerKeys of none", s.StoreServerKeys(bg, nil))

	ids := []persistence.ServerKeyID{
		{ServerName: "b.example:8448", KeyID: "ed25519:new"},
		{ServerName: "b.example:8448", KeyID: "ed25519:old"},
		{ServerName: "b.example:8448", KeyID: "ed25519:unknown"},
		{ServerName: "d.example", KeyID: "ed25519:new"},
	}
	got, err := s.ServerKeys(bg, ids)
	noErr(t, "ServerKeys", err)
	sortKeys(got)
	if want := []persistence.ServerKey{cur, old}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ServerKeys = %+v, want %+v", got, want)
	}

	// A refetch extends the current key's validity; the key turning old
	// later keeps its row with the expiry.
	cur.ValidUntilTS = 5000
	noErr(t, "StoreServerKeys again", s.StoreServerKeys(bg, []persistence.ServerKey{cur}))
	got, err = s.ServerKeys(bg, ids[:1])
	noErr(t, "ServerKeys", err)
	if len(got) != 1 || got[0].ValidUntilTS != 5000 {
		t.Fatalf("after a refetch: %+v, want valid until 5000", got)
	}
	expired := cur
	expired.ValidUntilTS, expired.ExpiredTS = 0, 4000
	noErr(t, "StoreServerKeys of the key turned old", s.StoreServerKeys(bg, []persistence.ServerKey{expired}))
	got, _ = s.ServerKeys(bg, ids[:1])
	if len(got) != 1 || !reflect.DeepEqual(got[0], expired) {
		t.Fatalf("after expiry: %+v, want %+v", got, expired)
	}
	if err := s.StoreServerKeys(bg, []persistence.ServerKey{{ServerName: "x", KeyID: "ed25519:a"}}); err == nil {
		t.Fatal("a key without its public key was stored")
	}

	// Key responses: byte for byte, the longer-valid one wins.
	_, err = s.ServerKeyResponse(bg, "b.example:8448")
	wantErr(t, "ServerKeyResponse of nothing", err, persistence.ErrNotFound)
	first := persistence.ServerKeyResponse{ServerName: "b.example:8448", ValidUntilTS: 2000, JSON: []byte(`{"server_name":"b.example:8448", "é":1}`)}
	noErr(t, "StoreServerKeyResponse", s.StoreServerKeyResponse(bg, first))
	stale := persistence.ServerKeyResponse{ServerName: "b.example:8448", ValidUntilTS: 1000, JSON: []byte(`{"stale":true}`)}
	noErr(t, "StoreServerKeyResponse of a staler one", s.StoreServerKeyResponse(bg, stale))
	r, err := s.ServerKeyResponse(bg, "b.example:8448")
	noErr(t, "ServerKeyResponse", err)
	if !reflect.DeepEqual(*r, first) {
		t.Fatalf("ServerKeyResponse = %+v %s, want the longer-valid %s", *r, r.JSON, first.JSON)
	}
	newer := persistence.ServerKeyResponse{ServerName: "b.example:8448", ValidUntilTS: 9000, JSON: []byte(`{"newer":true}`)}
	noErr(t, "StoreServerKeyResponse of a newer one", s.StoreServerKeyResponse(bg, newer))
	if r, _ := s.ServerKeyResponse(bg, "b.example:8448"); r == nil || !reflect.DeepEqual(*r, newer) {
		t.Fatalf("ServerKeyResponse = %+v, want the newer one", r)
	}
}

func sortKeys(keys []persistence.ServerKey) {
	slices.SortFunc(keys, func(a, b persistence.ServerKey) int {
		if c := strings.Compare(a.ServerName, b.ServerName); c != 0 {
			return c
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
}
