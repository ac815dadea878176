package httpapi

import (
	"container/list"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// RateLimits configures the client API's token buckets. The zero value
// limits nothing.
type RateLimits struct {
	Enabled bool
	// TrustForwardedFor takes the client address from the last
	// X-Forwarded-For entry (the one a single reverse proxy appended).
	TrustForwardedFor bool
	// PerUser applies to authenticated requests but /sync, by user ID.
	PerUser RateLimit
	// PerIP applies to every request but CORS preflights, by client address.
	PerIP RateLimit
	// Login applies to POST /login and POST /register, by client address.
	Login RateLimit
}

// RateLimit is one token bucket: Rate tokens a second refill it up to
// Burst, and each request takes one. Without a positive Rate and Burst it
// limits nothing.
type RateLimit struct {
	Rate  float64
	Burst int
}

// maxBucketsPerLimiter bounds each limiter's memory (a few hundred bytes a
// key). Buckets that have refilled are dropped anyway; the cap matters only
// under a flood of distinct keys, and then the least recently used bucket
// goes: its owner merely finds it full again.
const maxBucketsPerLimiter = 100_000

// rateLimits is the Server's set of limiters; nil when limits are off.
type rateLimits struct {
	trustForwardedFor bool
	perUser           *limiter
	perIP             *limiter
	login             *limiter
}

func newRateLimits(o RateLimits, now func() time.Time) *rateLimits {
	if !o.Enabled {
		return nil
	}
	return &rateLimits{
		trustForwardedFor: o.TrustForwardedFor,
		perUser:           newLimiter(o.PerUser, maxBucketsPerLimiter, now),
		perIP:             newLimiter(o.PerIP, maxBucketsPerLimiter, now),
		login:             newLimiter(o.Login, maxBucketsPerLimiter, now),
	}
}

// limiter keeps one token bucket per key (a user ID or a client address).
//
// A bucket is stored as the instant it will be full again rather than as a
// token count: at time t it holds burst - (full-t)/interval tokens, and
// burst once full ≤ t. Taking a token moves full one interval later. This
// is the token bucket in integer time (GCRA), so "wait retry_after_ms, then
// retry" succeeds exactly, with no float drift, and a bucket whose full
// instant has passed is indistinguishable from a new one and can be
// forgotten.
type limiter struct {
	interval time.Duration // time to refill one token: 1/rate
	capacity time.Duration // time to refill an empty bucket: burst/rate
	max      int           // most buckets kept
	now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     list.List                // most recently used at the front
}

type bucket struct {
	key  string
	full time.Time
}

// newLimiter returns nil, which limits nothing, for a RateLimit without a
// positive rate and burst.
func newLimiter(l RateLimit, max int, now func() time.Time) *limiter {
	if !(l.Rate > 0) || l.Burst < 1 {
		return nil
	}
	lim := &limiter{
		interval: clampDuration(float64(time.Second) / l.Rate),
		capacity: clampDuration(float64(l.Burst) * float64(time.Second) / l.Rate),
		max:      max,
		now:      now,
		buckets:  map[string]*list.Element{},
	}
	lim.lru.Init()
	return lim
}

// clampDuration converts nanoseconds to a Duration of at least 1ns that
// does not overflow when added to a time (Validate keeps rate and burst
// sane; this keeps absurd values harmless).
func clampDuration(ns float64) time.Duration {
	const most = float64(100 * 365 * 24 * time.Hour)
	return time.Duration(math.Max(1, math.Min(ns, most)))
}

// take takes a token from key's bucket. When the bucket is empty it takes
// nothing and returns how long until a token is available.
func (l *limiter) take(key string) (ok bool, wait time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetFull(now)

	var b *bucket
	if e, found := l.buckets[key]; found {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		for len(l.buckets) >= l.max {
			l.remove(l.lru.Back())
		}
		b = &bucket{key: key, full: now}
		l.buckets[key] = l.lru.PushFront(b)
	}

	full := b.full
	if full.Before(now) {
		full = now
	}
	next := full.Add(l.interval)
	if over := next.Sub(now) - l.capacity; over > 0 {
		return false, over
	}
	b.full = next
	return true, 0
}

// forgetFull drops the least recently used buckets that have refilled.
// Every bucket behind a given one was last used earlier, so every bucket is
// dropped by the first take at least capacity after its last use: the map
// holds only the keys seen within the last burst/rate seconds.
func (l *limiter) forgetFull(now time.Time) {
	for e := l.lru.Back(); e != nil && !e.Value.(*bucket).full.After(now); e = l.lru.Back() {
		l.remove(e)
	}
}

func (l *limiter) remove(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// errLimitExceeded is the 429 for a wait; retry_after_ms is rounded up so
// that a client waiting exactly that long finds a token.
func errLimitExceeded(msg string, wait time.Duration) *MatrixError {
	e := matrixError(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", msg)
	e.RetryAfterMS = int64((wait + time.Millisecond - 1) / time.Millisecond)
	return e
}

// rateLimit applies the per-address limits to every request (and the login
// limit to login and registration) before anything else runs, so that
// requests with bogus tokens are limited too. CORS preflights are never limited:
// a browser would report a 429 to them as an opaque CORS failure.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	if s.limits == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		addr := s.limits.clientAddr(r)
		if ok, wait := s.limits.perIP.take(addr); !ok {
			s.limited(w, r, "per_ip", errLimitExceeded("Too many requests from this address", wait))
			return
		}
		if r.Method == http.MethodPost && isLoginAttempt(r.URL.Path) {
			if ok, wait := s.limits.login.take(addr); !ok {
				s.limited(w, r, "login", errLimitExceeded("Too many login or registration attempts from this address", wait))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitUser applies the per-user limit; authed calls it once the caller is
// known. /sync is exempt: a client's sync loop must never be limited into
// failure (the per-address limit still bounds it).
func (s *Server) limitUser(r *http.Request, userID string) *MatrixError {
	if s.limits == nil || clientAPIEndpoint(r.URL.Path) == "sync" {
		return nil
	}
	ok, wait := s.limits.perUser.take(userID)
	if ok {
		return nil
	}
	e := errLimitExceeded("Too many requests for this user", wait)
	zerolog.Ctx(r.Context()).Debug().Str("limit", "per_user").Str("user_id", userID).Int64("retry_after_ms", e.RetryAfterMS).Msg("rate limited")
	return e
}

func (s *Server) limited(w http.ResponseWriter, r *http.Request, which string, e *MatrixError) {
	zerolog.Ctx(r.Context()).Debug().Str("limit", which).Str("remote_addr", r.RemoteAddr).Int64("retry_after_ms", e.RetryAfterMS).Msg("rate limited")
	writeError(w, e)
}

// clientAPIEndpoint is a client API path without its prefix and version
// ("/_matrix/client/v3/sync" → "sync"), or "" for other paths.
func clientAPIEndpoint(path string) string {
	rest, ok := strings.CutPrefix(path, "/_matrix/client/")
	if !ok {
		return ""
	}
	_, endpoint, _ := strings.Cut(rest, "/")
	return endpoint
}

func isLoginAttempt(path string) bool {
	e := clientAPIEndpoint(path)
	return e == "login" || e == "register"
}

// clientAddr is the key of a request's client: the peer address, or the
// last X-Forwarded-For entry behind a trusted proxy. IPv6 addresses are
// keyed by their /64, which one subscriber usually holds whole.
func (rl *rateLimits) clientAddr(r *http.Request) string {
	raw := r.RemoteAddr
	if rl.trustForwardedFor {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			raw = strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
		}
	}
	if host, _, err := net.SplitHostPort(raw); err == nil {
		raw = host // some proxies append the client's port too
	}
	ip, err := netip.ParseAddr(raw)
	if err != nil {
		return raw
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}
