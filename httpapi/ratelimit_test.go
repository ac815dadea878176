package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeClock is a limiter's clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBucketRefillsAtRateUpToBurst(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(RateLimit{Rate: 2, Burst: 3}, 100, clock.now)
	type step struct {
		advance time.Duration
		ok      bool
		wait    time.Duration
	}
	for i, s := range []step{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
		{0, false, 500 * time.Millisecond},                      // empty: one token every 1/rate
		{0, false, 500 * time.Millisecond},                      // a refused request takes nothing
		{499 * time.Millisecond, false, time.Millisecond},       // nearly there
		{time.Millisecond, true, 0},                             // waiting the full wait is enough
		{0, false, 500 * time.Millisecond},                      //
		{10 * time.Second, true, 0}, {0, true, 0}, {0, true, 0}, // refilled to burst, no further
		{0, false, 500 * time.Millisecond},
	} {
		clock.advance(s.advance)
		ok, wait := l.take("k")
		if ok != s.ok || wait != s.wait {
			t.Fatalf("step %d (+%v): take = %v, %v; want %v, %v", i, s.advance, ok, wait, s.ok, s.wait)
		}
	}
}

func TestBucketFractionalRate(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(RateLimit{Rate: 0.2, Burst: 1}, 100, clock.now)
	if ok, _ := l.take("k"); !ok {
		t.Fatal("first take refused")
	}
	ok, wait := l.take("k")
	if ok || wait != 5*time.Second {
		t.Fatalf("second take = %v, %v; want refused for 5s", ok, wait)
	}
	clock.advance(wait)
	if ok, _ := l.take("k"); !ok {
		t.Fatal("take after the wait refused")
	}
}

func TestZeroRateLimitLimitsNothing(t *testing.T) {
	for _, rl := range []RateLimit{{}, {Rate: 1}, {Burst: 1}, {Rate: -1, Burst: 5}} {
		l := newLimiter(rl, 100, newFakeClock().now)
		for range 100 {
			if ok, _ := l.take("k"); !ok {
				t.Fatalf("%+v refused a request", rl)
			}
		}
	}
}

func TestBucketsAreIndependentPerKey(t *testing.T) {
	l := newLimiter(RateLimit{Rate: 1, Burst: 1}, 100, newFakeClock().now)
	if ok, _ := l.take("a"); !ok {
		t.Fatal("a refused")
	}
	if ok, _ := l.take("a"); ok {
		t.Fatal("a's second take allowed")
	}
	if ok, _ := l.take("b"); !ok {
		t.Fatal("b refused because of a")
	}
}

// TestRetryAfterIsRoundedUpAndEnough: with a rate whose interval is not a
// whole number of milliseconds, waiting retry_after_ms still finds a token.
func TestRetryAfterIsRoundedUpAndEnough(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(RateLimit{Rate: 3, Burst: 1}, 100, clock.now)
	l.take("k")
	_, wait := l.take("k")
	e := errLimitExceeded("x", wait)
	if e.RetryAfterMS != 334 || retryAfterSeconds(e.RetryAfterMS) != "1" {
		t.Fatalf("wait %v gave retry_after_ms %d, Retry-After %s; want 334, 1", wait, e.RetryAfterMS, retryAfterSeconds(e.RetryAfterMS))
	}
	clock.advance(time.Duration(e.RetryAfterMS) * time.Millisecond)
	if ok, _ := l.take("k"); !ok {
		t.Fatal("refused after waiting retry_after_ms")
	}
	for wait, want := range map[time.Duration][2]string{
		time.Nanosecond:                       {"1", "1"},
		time.Second:                           {"1000", "1"},
		time.Second + time.Nanosecond:         {"1001", "2"},
		90*time.Second + 500*time.Millisecond: {"90500", "91"},
	} {
		e := errLimitExceeded("x", wait)
		if got := [2]string{strconv.FormatInt(e.RetryAfterMS, 10), retryAfterSeconds(e.RetryAfterMS)}; got != want {
			t.Errorf("wait %v: retry_after_ms, Retry-After = %v, want %v", wait, got, want)
		}
	}
}

// TestRefilledBucketsAreForgotten: a flood of one-off keys leaves nothing
// behind once their buckets have refilled.
func TestRefilledBucketsAreForgotten(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(RateLimit{Rate: 10, Burst: 5}, 1_000_000, clock.now)
	for i := range 10_000 {
		for range 5 { // empty each bucket: it refills in burst/rate = 500ms
			l.take(fmt.Sprint("10.0.", i/256, ".", i%256))
		}
	}
	clock.advance(499 * time.Millisecond)
	l.take("late")
	if n := l.len(); n != 10_001 {
		t.Fatalf("%d buckets before they refilled, want 10001", n)
	}
	clock.advance(time.Millisecond)
	l.take("later")
	if n := l.len(); n != 2 {
		t.Fatalf("%d buckets after the flood's refilled, want 2 (late, later)", n)
	}
	// A forgotten bucket comes back full: nothing was lost.
	for range 5 {
		if ok, _ := l.take("10.0.0.0"); !ok {
			t.Fatal("a forgotten key did not start over with a full bucket")
		}
	}
}

// TestBucketCountIsCapped: a flood of distinct keys faster than buckets
// refill cannot grow memory past the cap; the least recently used go.
func TestBucketCountIsCapped(t *testing.T) {
	l := newLimiter(RateLimit{Rate: 0.001, Burst: 1}, 100, newFakeClock().now)
	l.take("busy")
	for i := range 10_000 {
		l.take(fmt.Sprint("flood-", i))
		if i%50 == 0 {
			// Used often, it stays; evicted, it would come back full.
			if ok, _ := l.take("busy"); ok {
				t.Fatalf("after %d keys: a recently used, empty bucket was evicted by the flood", i+1)
			}
		}
		if n := l.len(); n > 100 {
			t.Fatalf("%d buckets after %d keys, cap is 100", n, i+1)
		}
	}
}

func TestClientAddr(t *testing.T) {
	for _, tc := range []struct {
		name       string
		trust      bool
		remoteAddr string
		xff        []string
		want       string
	}{
		{"ipv4", false, "203.0.113.7:5123", nil, "203.0.113.7"},
		{"ipv6 keyed by /64", false, "[2001:db8:1:2:aaaa::1]:443", nil, "2001:db8:1:2::/64"},
		{"ipv6 same /64", false, "[2001:db8:1:2:bbbb::9]:443", nil, "2001:db8:1:2::/64"},
		{"ipv6 zone dropped", false, "[fe80::1%eth0]:443", nil, "fe80::/64"},
		{"v4-mapped ipv6", false, "[::ffff:203.0.113.7]:80", nil, "203.0.113.7"},
		{"xff ignored by default", false, "203.0.113.7:5123", []string{"198.51.100.1"}, "203.0.113.7"},
		{"xff last entry when trusted", true, "127.0.0.1:5123", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"xff last header when trusted", true, "127.0.0.1:5123", []string{"6.6.6.6", "198.51.100.2"}, "198.51.100.2"},
		{"xff with port", true, "127.0.0.1:5123", []string{"198.51.100.3:4711"}, "198.51.100.3"},
		{"trusted without xff", true, "127.0.0.1:5123", nil, "127.0.0.1"},
		{"not an address", false, "@unix", nil, "@unix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remoteAddr
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := (&rateLimits{trustForwardedFor: tc.trust}).clientAddr(r); got != tc.want {
				t.Fatalf("clientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

// limitedServer is a test server with rate limits on a fake clock.
func limitedServer(t *testing.T, limits RateLimits) (*testServer, *fakeClock) {
	t.Helper()
	limits.Enabled = true
	ts := newTestServer(t, func(c *testServerConfig) { c.Options.RateLimits = limits })
	clock := newFakeClock()
	ts.API.limits = newRateLimits(limits, clock.now)
	return ts, clock
}

var generous = RateLimit{Rate: 1000, Burst: 1000}

// get sends a GET and returns the response with its body decoded.
func (ts *testServer) get(t *testing.T, path, token string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

// wantLimited checks a 429 M_LIMIT_EXCEEDED and returns its retry_after_ms.
func wantLimited(t *testing.T, resp *http.Response, body map[string]any) time.Duration {
	t.Helper()
	wantError(t, resp.StatusCode, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	ms, ok := body["retry_after_ms"].(float64)
	if !ok || ms <= 0 {
		t.Fatalf("429 without a positive retry_after_ms: %v", body)
	}
	if msg, _ := body["error"].(string); msg == "" {
		t.Fatalf("429 without an error message: %v", body)
	}
	if got, want := resp.Header.Get("Retry-After"), strconv.Itoa(int((ms+999)/1000)); got != want {
		t.Fatalf("Retry-After = %q with retry_after_ms %v, want %q", got, ms, want)
	}
	return time.Duration(ms) * time.Millisecond
}

func TestPerIPLimitAnswers429(t *testing.T) {
	ts, clock := limitedServer(t, RateLimits{PerUser: generous, PerIP: RateLimit{Rate: 0.5, Burst: 2}, Login: generous})
	for range 2 {
		if resp, body := ts.get(t, "/_matrix/client/versions", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("within the burst: %d %v", resp.StatusCode, body)
		}
	}
	resp, body := ts.get(t, "/_matrix/client/versions", "")
	if wait := wantLimited(t, resp, body); wait != 2*time.Second {
		t.Fatalf("retry_after_ms = %v, want 2000", wait)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("a 429 without CORS headers is unreadable to a browser client")
	}
	// Unknown endpoints and bad tokens are limited too: they cost the server.
	resp, body = ts.get(t, clientV3+"/account/whoami", "syt_bogus")
	wantLimited(t, resp, body)
	// Preflights never are.
	req, _ := http.NewRequest("OPTIONS", ts.URL+"/_matrix/client/versions", nil)
	if resp, err := ts.Client().Do(req); err != nil || resp.StatusCode == http.StatusTooManyRequests {
		t.Fatalf("preflight: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	clock.advance(2 * time.Second)
	if resp, body := ts.get(t, "/_matrix/client/versions", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("after retry_after_ms: %d %v", resp.StatusCode, body)
	}
}

func TestPerUserLimitSparesSyncAndOtherUsers(t *testing.T) {
	ts, clock := limitedServer(t, RateLimits{PerUser: RateLimit{Rate: 1, Burst: 3}, PerIP: generous, Login: generous})
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	for range 3 {
		if resp, body := ts.get(t, clientV3+"/account/whoami", alice.Token); resp.StatusCode != http.StatusOK {
			t.Fatalf("within the burst: %d %v", resp.StatusCode, body)
		}
	}
	resp, body := ts.get(t, clientV3+"/joined_rooms", alice.Token)
	if wait := wantLimited(t, resp, body); wait != time.Second {
		t.Fatalf("retry_after_ms = %v, want 1000", wait)
	}
	// /sync keeps working for the limited user, on v3 and r0 alike.
	for _, prefix := range []string{clientV3, "/_matrix/client/r0"} {
		for range 5 {
			if resp, body := ts.get(t, prefix+"/sync", alice.Token); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s/sync of a limited user: %d %v", prefix, resp.StatusCode, body)
			}
		}
	}
	// Bob, from the same address, has his own bucket.
	if resp, body := ts.get(t, clientV3+"/account/whoami", bob.Token); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob limited by alice's requests: %d %v", resp.StatusCode, body)
	}
	clock.advance(time.Second)
	if resp, body := ts.get(t, clientV3+"/account/whoami", alice.Token); resp.StatusCode != http.StatusOK {
		t.Fatalf("after retry_after_ms: %d %v", resp.StatusCode, body)
	}
}

func TestLoginLimitCountsLoginAndRegister(t *testing.T) {
	ts, clock := limitedServer(t, RateLimits{PerUser: generous, PerIP: generous, Login: RateLimit{Rate: 0.1, Burst: 4}})
	ts.register(t, "alice") // two attempts: the UIA round trip
	wrong := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"},
		"password":   "guess",
	}
	for range 2 {
		status, body := ts.do(t, "POST", clientV3+"/login", "", wrong)
		wantError(t, status, body, http.StatusForbidden, "M_FORBIDDEN")
	}
	status, body := ts.do(t, "POST", "/_matrix/client/r0/login", "", wrong)
	wantError(t, status, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	if body["retry_after_ms"] != float64(10000) {
		t.Fatalf("retry_after_ms = %v, want 10000", body["retry_after_ms"])
	}
	status, body = ts.do(t, "POST", clientV3+"/register", "", map[string]any{"username": "bob", "password": "pw"})
	wantError(t, status, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	// Reading the login flows is not an attempt.
	if status, body := ts.do(t, "GET", clientV3+"/login", "", nil); status != http.StatusOK {
		t.Fatalf("GET /login: %d %v", status, body)
	}
	clock.advance(10 * time.Second)
	wrong["password"] = "pw-alice"
	if status, body := ts.do(t, "POST", clientV3+"/login", "", wrong); status != http.StatusOK {
		t.Fatalf("login after retry_after_ms: %d %v", status, body)
	}
}

func TestLimitsOffByDefault(t *testing.T) {
	ts := newTestServer(t)
	if ts.API.limits != nil {
		t.Fatal("zero RateLimits built limiters")
	}
	for range 50 {
		if status, body := ts.do(t, "GET", "/_matrix/client/versions", "", nil); status != http.StatusOK {
			t.Fatalf("%d %v", status, body)
		}
	}
}
