package federation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/soma-chat/soma/persistence"
)

// fetchTimeout bounds one direct key fetch from a remote server.
const fetchTimeout = 15 * time.Second

// minRefetchInterval is how long after a fetch of a server's keys, failed
// or not, the next one waits, whatever asks for it. gomatrixserverlib's
// KeyRing refetches whenever a signature fails to check with the stored
// keys, so without a floor every forged request, or one naming a key the
// origin never had, would make this server call the claimed origin; and
// every notary query naming an unreachable server would dial it again.
const minRefetchInterval = time.Minute

// errFetchedRecently is fetchDirect declining to fetch again so soon.
var errFetchedRecently = errors.New("federation: keys fetched or tried less than a minute ago")

// KeyRing knows the signing keys of every server this one talks to: its
// own from memory, remote ones from the database, fetched over TLS from the
// server itself when missing or past their valid_until_ts. It checks
// signatures with gomatrixserverlib's KeyRing on top of those.
type KeyRing struct {
	self  *Identity
	store persistence.ServerKeyStore
	keys  gomatrixserverlib.KeyClient
	ring  gomatrixserverlib.KeyRing
	log   zerolog.Logger
	now   func() time.Time

	// fetches coalesces concurrent fetches of one server's keys.
	fetches singleflight.Group
	mu      sync.Mutex
	// fetched is when each server's keys were last fetched or tried.
	fetched map[spec.ServerName]time.Time
}

// NewKeyRing wires a keyring. keys fetches remote key responses (the
// outbound Client's KeyClient).
func NewKeyRing(self *Identity, store persistence.ServerKeyStore, keys gomatrixserverlib.KeyClient, log zerolog.Logger) *KeyRing {
	k := &KeyRing{self: self, store: store, keys: keys, log: log, now: time.Now, fetched: map[spec.ServerName]time.Time{}}
	// gomatrixserverlib's KeyRing panics on a nil KeyDatabase: both parts
	// are always set.
	k.ring = gomatrixserverlib.KeyRing{
		KeyDatabase: keyDatabase{k},
		KeyFetchers: []gomatrixserverlib.KeyFetcher{directFetcher{k}},
	}
	return k
}

// VerifyJSONs implements gomatrixserverlib.JSONVerifier.
func (k *KeyRing) VerifyJSONs(ctx context.Context, reqs []gomatrixserverlib.VerifyJSONRequest) ([]gomatrixserverlib.VerifyJSONResult, error) {
	return k.ring.VerifyJSONs(ctx, reqs)
}

// ErrNoKeys is returned by KeyResponse when a server's keys are neither
// stored nor fetchable.
var ErrNoKeys = errors.New("federation: no keys for the server")

// KeyResponse returns a server's signed key response valid until at least
// minValidUntil (and now): this server's own, freshly signed, or a remote
// one from the store, fetched again when the stored one is too old. When
// the fetch fails the stored response is returned however old; with none,
// ErrNoKeys.
func (k *KeyRing) KeyResponse(ctx context.Context, server spec.ServerName, minValidUntil spec.Timestamp) ([]byte, error) {
	now := k.now()
	if server == k.self.ServerName {
		raw, _, err := k.self.SelfKeys(now)
		return raw, err
	}
	stored, err := k.store.ServerKeyResponse(ctx, string(server))
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return nil, err
	}
	if nowTS := spec.AsTimestamp(now); minValidUntil < nowTS {
		minValidUntil = nowTS
	}
	if stored != nil && spec.Timestamp(stored.ValidUntilTS) >= minValidUntil {
		return stored.JSON, nil
	}
	fresh, err := k.fetchDirect(ctx, server)
	if err == nil {
		return fresh.Raw, nil
	}
	if !errors.Is(err, errFetchedRecently) {
		k.log.Warn().Err(err).Str("server_name", string(server)).Msg("fetching a server's keys failed")
	}
	if stored != nil {
		return stored.JSON, nil
	}
	return nil, ErrNoKeys
}

// fetchDirect fetches a server's keys (fetchOnce), at most once per
// minRefetchInterval, one fetch at a time per server.
func (k *KeyRing) fetchDirect(ctx context.Context, server spec.ServerName) (*gomatrixserverlib.ServerKeys, error) {
	k.mu.Lock()
	last, ok := k.fetched[server]
	k.mu.Unlock()
	if ok && k.now().Sub(last) < minRefetchInterval {
		return nil, errFetchedRecently
	}
	v, err, _ := k.fetches.Do(string(server), func() (any, error) {
		keys, err := k.fetchOnce(ctx, server)
		k.noteFetch(server)
		return keys, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*gomatrixserverlib.ServerKeys), nil
}

// maxFetchTimes is how many servers' fetch times are remembered before
// those past the floor are forgotten: names in notary queries and
// X-Matrix origins are anyone's choice, and must not grow memory forever.
const maxFetchTimes = 4096

// noteFetch remembers that server's keys were fetched (or tried) now.
func (k *KeyRing) noteFetch(server spec.ServerName) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if len(k.fetched) >= maxFetchTimes {
		for s, t := range k.fetched {
			if now.Sub(t) >= minRefetchInterval {
				delete(k.fetched, s)
			}
		}
	}
	k.fetched[server] = now
}

// fetchOnce asks server for its keys over TLS, checks that the response
// is the server's and self-signed with every ed25519 key it lists, and
// stores the response and its keys.
func (k *KeyRing) fetchOnce(ctx context.Context, server spec.ServerName) (*gomatrixserverlib.ServerKeys, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	keys, err := k.keys.GetServerKeys(ctx, server)
	if err != nil {
		return nil, fmt.Errorf("federation: fetching keys of %s: %w", server, err)
	}
	// The validity is judged by whoever uses a key (at the time it signed),
	// so CheckKeys is not asked to check valid_until_ts here.
	if checks, _ := gomatrixserverlib.CheckKeys(server, time.Unix(0, 0), keys); !checks.AllChecksOK {
		return nil, fmt.Errorf("federation: the key response of %s fails its checks (server name %v, ed25519 key %v, self-signed %v)",
			server, checks.MatchingServerName, checks.HasEd25519Key, checks.AllEd25519ChecksOK != nil && *checks.AllEd25519ChecksOK)
	}
	if err := k.store.StoreServerKeys(ctx, serverKeysOf(keys)); err != nil {
		return nil, err
	}
	if err := k.store.StoreServerKeyResponse(ctx, persistence.ServerKeyResponse{
		ServerName: string(server), ValidUntilTS: int64(keys.ValidUntilTS), JSON: keys.Raw,
	}); err != nil {
		return nil, err
	}
	k.log.Debug().Str("server_name", string(server)).Int("keys", len(keys.VerifyKeys)+len(keys.OldVerifyKeys)).Msg("fetched a server's keys")
	return &keys, nil
}

// serverKeysOf lists the keys of a checked response: current keys valid
// until the response's valid_until_ts, old ones with their expiry.
func serverKeysOf(keys gomatrixserverlib.ServerKeys) []persistence.ServerKey {
	var out []persistence.ServerKey
	for id, v := range keys.VerifyKeys {
		out = append(out, persistence.ServerKey{ServerName: string(keys.ServerName), KeyID: string(id), PublicKey: v.Key, ValidUntilTS: int64(keys.ValidUntilTS)})
	}
	for id, v := range keys.OldVerifyKeys {
		out = append(out, persistence.ServerKey{ServerName: string(keys.ServerName), KeyID: string(id), PublicKey: v.Key, ExpiredTS: int64(v.ExpiredTS)})
	}
	return out
}

func lookupResult(k persistence.ServerKey) gomatrixserverlib.PublicKeyLookupResult {
	return gomatrixserverlib.PublicKeyLookupResult{
		VerifyKey:    gomatrixserverlib.VerifyKey{Key: k.PublicKey},
		ValidUntilTS: spec.Timestamp(k.ValidUntilTS),
		ExpiredTS:    spec.Timestamp(k.ExpiredTS),
	}
}

// keyDatabase is gomatrixserverlib's KeyDatabase over the store, with this
// server's own key answered from memory.
type keyDatabase struct{ k *KeyRing }

func (d keyDatabase) FetcherName() string { return "soma database" }

func (d keyDatabase) FetchKeys(ctx context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	var ids []persistence.ServerKeyID
	for req := range reqs {
		if req.ServerName == d.k.self.ServerName {
			if key, ok := d.k.ownKey(req.KeyID); ok {
				out[req] = lookupResult(key)
			}
			continue
		}
		ids = append(ids, persistence.ServerKeyID{ServerName: string(req.ServerName), KeyID: string(req.KeyID)})
	}
	if len(ids) == 0 {
		return out, nil
	}
	stored, err := d.k.store.ServerKeys(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, key := range stored {
		out[gomatrixserverlib.PublicKeyLookupRequest{ServerName: spec.ServerName(key.ServerName), KeyID: gomatrixserverlib.KeyID(key.KeyID)}] = lookupResult(key)
	}
	return out, nil
}

// ownKey is one of this server's keys, current or old, as the keyring
// would have it stored.
func (k *KeyRing) ownKey(id gomatrixserverlib.KeyID) (persistence.ServerKey, bool) {
	if id == k.self.Key.KeyID {
		return persistence.ServerKey{PublicKey: k.self.Key.Public(), ValidUntilTS: int64(spec.AsTimestamp(k.now().Add(k.self.KeyValidity)))}, true
	}
	for _, old := range k.self.OldKeys {
		if old.KeyID == id {
			return persistence.ServerKey{PublicKey: old.Public, ExpiredTS: int64(old.ExpiredTS)}, true
		}
	}
	return persistence.ServerKey{}, false
}

// StoreKeys is called by gomatrixserverlib's KeyRing with every key a
// verification used, stored or fetched. The fetcher stores what it
// fetched itself, so there is nothing left to write.
func (d keyDatabase) StoreKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	return nil
}

// directFetcher fetches keys from the servers themselves.
type directFetcher struct{ k *KeyRing }

func (f directFetcher) FetcherName() string { return "direct" }

func (f directFetcher) FetchKeys(ctx context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	servers := map[spec.ServerName]bool{}
	for req := range reqs {
		if req.ServerName != f.k.self.ServerName {
			servers[req.ServerName] = true
		}
	}
	for server := range servers {
		keys, err := f.k.fetchDirect(ctx, server)
		if errors.Is(err, errFetchedRecently) {
			continue // the stored keys are as fresh as they get
		}
		if err != nil {
			f.k.log.Warn().Err(err).Str("server_name", string(server)).Msg("fetching a server's keys failed")
			continue
		}
		for _, key := range serverKeysOf(*keys) {
			out[gomatrixserverlib.PublicKeyLookupRequest{ServerName: server, KeyID: gomatrixserverlib.KeyID(key.KeyID)}] = lookupResult(key)
		}
	}
	return out, nil
}
