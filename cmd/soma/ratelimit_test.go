package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// limitReply is one response to a request that may be rate limited.
type limitReply struct {
	status     int
	retryAfter string // the Retry-After header
	body       struct {
		ErrCode      string `json:"errcode"`
		Error        string `json:"error"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	}
}

func (c *client) tryLimited(method, path string) limitReply {
	c.t.Helper()
	return c.tryLimitedJSON(method, path, "")
}

func (c *client) tryLimitedJSON(method, path, body string) limitReply {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := limitReply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		c.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
	}
	return r
}

// checkLimited fails unless r is a well-formed 429 and returns its wait.
func checkLimited(t *testing.T, r limitReply) time.Duration {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.body.ErrCode != "M_LIMIT_EXCEEDED" || r.body.Error == "" {
		t.Fatalf("got %d %+v, want 429 M_LIMIT_EXCEEDED", r.status, r.body)
	}
	if r.body.RetryAfterMS <= 0 {
		t.Fatalf("429 without a positive retry_after_ms: %+v", r.body)
	}
	if want := strconv.FormatInt((r.body.RetryAfterMS+999)/1000, 10); r.retryAfter != want {
		t.Fatalf("Retry-After %q with retry_after_ms %d, want %q", r.retryAfter, r.body.RetryAfterMS, want)
	}
	return time.Duration(r.body.RetryAfterMS) * time.Millisecond
}

// TestRateLimitsAnswer429ThenRecover: with tiny limits set through the
// environment, a burst from one user and repeated login attempts get 429
// M_LIMIT_EXCEEDED with retry_after_ms and Retry-After; waiting that long
// is enough; /sync is never limited per user.
func TestRateLimitsAnswer429ThenRecover(t *testing.T) {
	srv := startServer(t, t.TempDir(),
		"SOMA_RATE_LIMITS_ENABLED=true",
		"SOMA_RATE_LIMITS_PER_USER_RATE=2",
		"SOMA_RATE_LIMITS_PER_USER_BURST=5",
		"SOMA_RATE_LIMITS_LOGIN_RATE=0.5",
		"SOMA_RATE_LIMITS_LOGIN_BURST=3",
	)
	alice := srv.register("alice") // two login attempts: the UIA round trip

	t.Run("per user", func(t *testing.T) {
		const burst = 20
		replies := make([]limitReply, burst)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range replies {
			wg.Add(1)
			go func() { defer wg.Done(); replies[i] = alice.tryLimited("GET", "/_matrix/client/v3/account/whoami") }()
		}
		wg.Wait()
		elapsed := time.Since(start)
		var ok int
		var wait time.Duration
		for _, r := range replies {
			if r.status == http.StatusOK {
				ok++
				continue
			}
			wait = max(wait, checkLimited(t, r))
		}
		// 5 at once, plus whatever refilled at 2/s while the burst ran (on
		// a loaded machine the burst may take a while: the bound grows with
		// the time it took, measured from before the first request).
		if most := 5 + int(elapsed.Seconds()*2); ok < 5 || ok > most {
			t.Fatalf("%d of %d requests succeeded in %v, want the burst of 5 and at most %d", ok, burst, elapsed, most)
		}
		if ok == burst && elapsed < 7*time.Second {
			t.Fatalf("all %d requests succeeded in %v, want some refused", burst, elapsed)
		}
		if wait > time.Second {
			t.Fatalf("retry_after_ms %v exceeds one token's refill (500ms)", wait)
		}
		// The sync loop goes on while the user is limited.
		for range 3 {
			alice.sync("", 0)
		}
		time.Sleep(wait)
		if r := alice.tryLimited("GET", "/_matrix/client/v3/account/whoami"); r.status != http.StatusOK {
			t.Fatalf("after waiting retry_after_ms: %d %+v", r.status, r.body)
		}
	})

	t.Run("login attempts", func(t *testing.T) {
		// The first round of registration is an attempt too, and a cheap
		// one: no password is hashed, so the burst outruns the refill.
		const burst = 10
		replies := make([]limitReply, burst)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range replies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies[i] = srv.anonymous().tryLimitedJSON("POST", "/_matrix/client/v3/register", `{"username":"bob","password":"pw"}`)
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		var attempts int
		var wait time.Duration
		for _, r := range replies {
			if r.status == http.StatusUnauthorized { // the UIA challenge
				attempts++
				continue
			}
			wait = max(wait, checkLimited(t, r))
		}
		// The burst of 3, plus one token per 2s the burst took to arrive
		// (a loaded machine may spread it out).
		if most := 3 + int(elapsed.Seconds()/2); attempts > most {
			t.Fatalf("%d of %d attempts went through in %v, want at most %d (the burst of 3 plus the refill)", attempts, burst, elapsed, most)
		}
		if wait > 2*time.Second {
			t.Fatalf("retry_after_ms %v exceeds one token's refill (2s)", wait)
		}
		time.Sleep(wait)
		srv.login("alice")
	})
}
