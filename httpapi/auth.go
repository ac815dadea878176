package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/soma-chat/soma/persistence"
)

// accessTokenBytes is the entropy of an access token (256 bits).
const accessTokenBytes = 32

// newAccessToken returns a fresh random token and the hash that is stored.
func newAccessToken() (token, hash string) {
	var b [accessTokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	token = "syt_" + base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

// hashToken is how tokens are stored: a lost database leaks no usable token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenCache keeps recently used token hashes → devices, so that most
// requests authenticate without a database round trip. Logout evicts.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]*persistence.Device
	// gen counts evictions. A lookup that missed the cache notes gen before
	// reading the database and caches its answer only if no eviction ran
	// meanwhile: otherwise a logout racing the lookup could leave the dead
	// token cached for good.
	gen uint64
}

const tokenCacheMax = 100000

func newTokenCache() *tokenCache { return &tokenCache{m: map[string]*persistence.Device{}} }

// get returns the cached device, or nil and the generation to hand to put.
func (c *tokenCache) get(hash string) (*persistence.Device, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[hash], c.gen
}

// put caches d unless an eviction happened since get returned gen.
func (c *tokenCache) put(hash string, d *persistence.Device, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) >= tokenCacheMax {
		clear(c.m)
	}
	c.m[hash] = d
}

// forgetUser drops every cached token of a user (logout/all, password change).
func (c *tokenCache) forgetUser(localpart string, deviceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, d := range c.m {
		if d.Localpart == localpart && (deviceID == "" || d.DeviceID == deviceID) {
			delete(c.m, h)
		}
	}
}

type deviceKey struct{}

// caller is the authenticated device of a request.
type caller struct {
	persistence.Device
	UserID string
}

func callerFrom(ctx context.Context) *caller {
	c, _ := ctx.Value(deviceKey{}).(*caller)
	return c
}

// accessToken reads the token from the Authorization header or, as the
// spec still allows, the access_token query parameter.
func accessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	return r.URL.Query().Get("access_token")
}

// authed wraps a handler that needs a logged-in device.
func (s *Server) authed(h handlerFunc) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		tok := accessToken(r)
		if tok == "" {
			return 0, nil, matrixError(http.StatusUnauthorized, "M_MISSING_TOKEN", "Missing access token")
		}
		hash := hashToken(tok)
		dev, gen := s.tokens.get(hash)
		if dev == nil {
			d, err := s.store.DeviceByTokenHash(r.Context(), hash)
			if errors.Is(err, persistence.ErrNotFound) {
				return 0, nil, matrixError(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "Unknown access token")
			}
			if err != nil {
				return 0, nil, err
			}
			dev = d
			s.tokens.put(hash, dev, gen)
		}
		c := &caller{Device: *dev, UserID: "@" + dev.Localpart + ":" + s.opts.ServerName}
		if e := s.limitUser(r, c.UserID); e != nil {
			return 0, nil, e
		}
		logCaller(r, c.UserID)
		return h(r.WithContext(context.WithValue(r.Context(), deviceKey{}, c)))
	}
}
