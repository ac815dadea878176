package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/sqlite"
)

// remoteKeys is a TLS server on loopback publishing a key response that
// the test changes as it goes, counting the fetches.
type remoteKeys struct {
	name spec.ServerName
	mu   sync.Mutex
	resp []byte
	hits int
}

func newRemoteKeys(t *testing.T) *remoteKeys {
	rk := &remoteKeys{}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/key/v2/server" {
			http.NotFound(w, r)
			return
		}
		rk.mu.Lock()
		defer rk.mu.Unlock()
		rk.hits++
		w.Header().Set("Content-Type", "application/json")
		w.Write(rk.resp)
	}))
	t.Cleanup(ts.Close)
	rk.name = spec.ServerName(strings.TrimPrefix(ts.URL, "https://"))
	return rk
}

// publish makes the server answer with current keys valid until
// validUntil and old keys expired at their times, signed by every
// current key.
func (rk *remoteKeys) publish(t *testing.T, validUntil time.Time, current []*SigningKey, old map[*SigningKey]time.Time) {
	t.Helper()
	f := gomatrixserverlib.ServerKeyFields{
		ServerName: rk.name, ValidUntilTS: spec.AsTimestamp(validUntil),
		VerifyKeys:    map[gomatrixserverlib.KeyID]gomatrixserverlib.VerifyKey{},
		OldVerifyKeys: map[gomatrixserverlib.KeyID]gomatrixserverlib.OldVerifyKey{},
	}
	for _, k := range current {
		f.VerifyKeys[k.KeyID] = gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(k.Public())}
	}
	for k, exp := range old {
		f.OldVerifyKeys[k.KeyID] = gomatrixserverlib.OldVerifyKey{VerifyKey: gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(k.Public())}, ExpiredTS: spec.AsTimestamp(exp)}
	}
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range current {
		if raw, err = gomatrixserverlib.SignJSON(string(rk.name), k.KeyID, k.Private, raw); err != nil {
			t.Fatal(err)
		}
	}
	rk.mu.Lock()
	rk.resp = raw
	rk.mu.Unlock()
}

func (rk *remoteKeys) fetches() int {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	return rk.hits
}

func mustKey(t *testing.T) *SigningKey {
	t.Helper()
	k, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// verify checks a message signed by key as rk's server at the given time.
func verify(t *testing.T, ring *KeyRing, rk *remoteKeys, key *SigningKey, at time.Time) error {
	t.Helper()
	msg, err := gomatrixserverlib.SignJSON(string(rk.name), key.KeyID, key.Private, []byte(`{"hello":"world"}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ring.VerifyJSONs(context.Background(), []gomatrixserverlib.VerifyJSONRequest{{
		ServerName: rk.name, AtTS: spec.AsTimestamp(at), Message: msg,
		ValidityCheckingFunc: gomatrixserverlib.StrictValiditySignatureCheck,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Error
}

func TestKeyRingFetchesCachesRefetchesAndKeepsOldKeys(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "soma.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	self := &Identity{ServerName: "127.0.0.1:2", Key: mustKey(t), KeyValidity: time.Hour}
	ring := NewKeyRing(self, store, NewClient(self, ClientOptions{SkipTLSVerify: true, AllowPrivateNetworks: true}), zerolog.Nop())
	rk := newRemoteKeys(t)
	k1, k2 := mustKey(t), mustKey(t)
	now := time.Now()
	// The keyring's clock only spaces fetches (minRefetchInterval): the
	// test moves it past the floor where it expects a refetch.
	clock := now
	ring.now = func() time.Time { return clock }
	later := func() { clock = clock.Add(minRefetchInterval + time.Second) }
	rk.publish(t, now.Add(time.Hour), []*SigningKey{k1}, nil)

	// First use fetches over TLS; the next is served from the store.
	if err := verify(t, ring, rk, k1, now); err != nil {
		t.Fatalf("k1: %v", err)
	}
	if err := verify(t, ring, rk, k1, now); err != nil || rk.fetches() != 1 {
		t.Fatalf("second check: %v after %d fetches, want 1", err, rk.fetches())
	}
	stored, err := store.ServerKeyResponse(ctx, string(rk.name))
	if err != nil || stored.ValidUntilTS != int64(spec.AsTimestamp(now.Add(time.Hour))) {
		t.Fatalf("stored response %+v, %v", stored, err)
	}

	// A key past its valid_until_ts is fetched again, but not twice
	// within minRefetchInterval: a forged signature or an unknown key
	// then costs no fetch.
	if err := verify(t, ring, rk, mustKey(t), now); err == nil || rk.fetches() != 1 {
		t.Fatalf("unknown key within the floor: %v after %d fetches, want a failure and 1 fetch", err, rk.fetches())
	}
	later()
	id := []persistence.ServerKeyID{{ServerName: string(rk.name), KeyID: string(k1.KeyID)}}
	noErr(t, store.StoreServerKeys(ctx, []persistence.ServerKey{{ServerName: string(rk.name), KeyID: string(k1.KeyID), PublicKey: k1.Public(), ValidUntilTS: now.Add(-time.Minute).UnixMilli()}}))
	if err := verify(t, ring, rk, k1, now); err != nil || rk.fetches() != 2 {
		t.Fatalf("after expiry: %v after %d fetches, want 2", err, rk.fetches())
	}
	if keys, _ := store.ServerKeys(ctx, id); len(keys) != 1 || keys[0].ValidUntilTS <= now.UnixMilli() {
		t.Fatalf("refetched key %+v, want valid in the future", keys)
	}

	// Rotation: k1 moves to old_verify_keys; it still verifies what it
	// signed before it expired, and nothing after.
	expired := now.Add(-time.Minute)
	rk.publish(t, now.Add(time.Hour), []*SigningKey{k2}, map[*SigningKey]time.Time{k1: expired})
	later()
	if err := verify(t, ring, rk, k2, now); err != nil {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if err := verify(t, ring, rk, k1, expired.Add(-time.Hour)); err != nil {
		t.Fatalf("k1 before its expiry: %v", err)
	}
	if err := verify(t, ring, rk, k1, now); err == nil {
		t.Fatal("k1 verified a signature made after it expired")
	}

	// The server forgets k1 altogether: the store does not.
	rk.publish(t, now.Add(time.Hour), []*SigningKey{k2}, nil)
	later()
	noErr(t, store.StoreServerKeys(ctx, []persistence.ServerKey{{ServerName: string(rk.name), KeyID: string(k2.KeyID), PublicKey: k2.Public(), ValidUntilTS: now.Add(-time.Minute).UnixMilli()}}))
	if err := verify(t, ring, rk, k2, now); err != nil {
		t.Fatalf("k2 refetched: %v", err)
	}
	if err := verify(t, ring, rk, k1, expired.Add(-time.Hour)); err != nil {
		t.Fatalf("k1 once the server no longer lists it: %v", err)
	}

	// A key the server never had is refused, even with a fetch allowed;
	// so is a response that is not signed by the key it lists.
	later()
	if err := verify(t, ring, rk, mustKey(t), now); err == nil {
		t.Fatal("an unknown key verified")
	}
	k3 := mustKey(t)
	rk.publish(t, now.Add(time.Hour), []*SigningKey{k3}, nil)
	forged := rk.resp
	rk.mu.Lock()
	rk.resp = []byte(strings.Replace(string(forged), string(k3.KeyID), "ed25519:zzz", 1))
	rk.mu.Unlock()
	if _, err := ring.KeyResponse(ctx, "127.0.0.1:1", 0); err != ErrNoKeys {
		t.Fatalf("KeyResponse of an unreachable server: %v, want ErrNoKeys", err)
	}
	later()
	if _, err := ring.fetchDirect(ctx, rk.name); err == nil || err == errFetchedRecently {
		t.Fatal("a key response not signed by its own key was accepted")
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPrivateNetworksAreRefusedUnlessAllowed(t *testing.T) {
	ctx := context.Background()
	rk := newRemoteKeys(t) // on 127.0.0.1
	rk.publish(t, time.Now().Add(time.Hour), []*SigningKey{mustKey(t)}, nil)
	self := &Identity{ServerName: "127.0.0.1:2", Key: mustKey(t), KeyValidity: time.Hour}

	strict := NewClient(self, ClientOptions{SkipTLSVerify: true})
	if _, err := strict.GetServerKeys(ctx, rk.name); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("fetch from loopback without allow_private_networks: %v, want denied", err)
	}
	if _, err := strict.LookupProfile(ctx, rk.name, "@a:"+string(rk.name), ""); err == nil {
		t.Fatal("a signed request reached loopback without allow_private_networks")
	}
	if n := rk.fetches(); n != 0 {
		t.Fatalf("the server was reached %d times", n)
	}
	lax := NewClient(self, ClientOptions{SkipTLSVerify: true, AllowPrivateNetworks: true})
	if _, err := lax.GetServerKeys(ctx, rk.name); err != nil || rk.fetches() != 1 {
		t.Fatalf("fetch with allow_private_networks: %v", err)
	}
}

func TestOwnOldKeysArePublishedAndVerifyUntilTheirExpiry(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "soma.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	old := mustKey(t)
	expired := time.Now().Add(-time.Hour)
	self := &Identity{ServerName: "127.0.0.1:2", Key: mustKey(t), KeyValidity: time.Hour,
		OldKeys: []OldKey{{KeyID: old.KeyID, Public: old.Public(), ExpiredTS: spec.AsTimestamp(expired)}}}

	raw, _, err := self.SelfKeys(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var keys gomatrixserverlib.ServerKeys
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	got, ok := keys.OldVerifyKeys[old.KeyID]
	if !ok || string(got.Key) != string(old.Public()) || got.ExpiredTS != spec.AsTimestamp(expired) {
		t.Fatalf("old_verify_keys = %+v, want %s expired at %d", keys.OldVerifyKeys, old.KeyID, spec.AsTimestamp(expired))
	}
	if checks, _ := gomatrixserverlib.CheckKeys(self.ServerName, time.Now(), keys); !checks.AllChecksOK {
		t.Fatalf("own response fails its checks: %+v", checks)
	}

	ring := NewKeyRing(self, store, NewClient(self, ClientOptions{}), zerolog.Nop())
	own := &remoteKeys{name: self.ServerName} // no server: own keys never go out
	if err := verify(t, ring, own, old, expired.Add(-time.Minute)); err != nil {
		t.Fatalf("old key before its expiry: %v", err)
	}
	if err := verify(t, ring, own, old, expired.Add(time.Minute)); err == nil {
		t.Fatal("old key verified a signature made after its expiry")
	}
	if err := verify(t, ring, own, self.Key, time.Now()); err != nil {
		t.Fatalf("current key: %v", err)
	}
}
