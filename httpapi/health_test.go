package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealthAnswersWhileTheServerServes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	status, body := ts.do(t, "GET", "/health", "", nil)
	if status != http.StatusOK || body["status"] != "ok" || len(body) != 1 {
		t.Fatalf("GET /health: %d %v", status, body)
	}
	resp, err := ts.Client().Head(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD /health: %d", resp.StatusCode)
	}
	status, body = ts.do(t, "POST", "/health", "", nil)
	wantError(t, status, body, http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
}

// check is a ReadinessCheck whose outcome the test sets.
func check(name string, err *atomic.Pointer[error]) ReadinessCheck {
	return ReadinessCheck{Name: name, Check: func(context.Context) error {
		if e := err.Load(); e != nil {
			return *e
		}
		return nil
	}}
}

func TestReadyReportsEachCheck(t *testing.T) {
	t.Parallel()
	var actorsErr atomic.Pointer[error]
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.ReadinessChecks = []ReadinessCheck{check("actors", &actorsErr)}
	})
	status, body := ts.do(t, "GET", "/ready", "", nil)
	checks, _ := body["checks"].(map[string]any)
	if status != http.StatusOK || body["status"] != "ok" || checks["database"] != "ok" || checks["actors"] != "ok" {
		t.Fatalf("all well: %d %v", status, body)
	}

	stopped := errors.New("actor system stopped")
	actorsErr.Store(&stopped)
	status, body = ts.do(t, "GET", "/ready", "", nil)
	checks, _ = body["checks"].(map[string]any)
	if status != http.StatusServiceUnavailable || body["status"] != "unavailable" || checks["actors"] != "failed" || checks["database"] != "ok" {
		t.Fatalf("actors down: %d %v", status, body)
	}

	actorsErr.Store(nil)
	if err := ts.Store.Close(); err != nil {
		t.Fatal(err)
	}
	status, body = ts.do(t, "GET", "/ready", "", nil)
	checks, _ = body["checks"].(map[string]any)
	if status != http.StatusServiceUnavailable || checks["database"] != "failed" || checks["actors"] != "ok" {
		t.Fatalf("database closed: %d %v", status, body)
	}
	// Liveness does not depend on the database.
	if status, body := ts.do(t, "GET", "/health", "", nil); status != http.StatusOK {
		t.Fatalf("/health with the database closed: %d %v", status, body)
	}
}

func TestReadyTimesOutACheckThatHangs(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.ReadyTimeout = 50 * time.Millisecond
		c.Options.ReadinessChecks = []ReadinessCheck{{Name: "stuck", Check: func(context.Context) error {
			<-release // ignores its context on purpose
			return nil
		}}}
	})
	start := time.Now()
	status, body := ts.do(t, "GET", "/ready", "", nil)
	checks, _ := body["checks"].(map[string]any)
	if status != http.StatusServiceUnavailable || checks["stuck"] != "timeout" || checks["database"] != "ok" {
		t.Fatalf("got %d %v", status, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("/ready took %v with a 50ms timeout", d)
	}
}

func TestConcurrentReadyRequestsShareOneRoundOfChecks(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.ReadinessChecks = []ReadinessCheck{{Name: "slow", Check: func(ctx context.Context) error {
			runs.Add(1)
			started <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}}
	})
	const probes = 8
	statuses := make(chan int, probes)
	var wg sync.WaitGroup
	get := func() {
		defer wg.Done()
		resp, err := ts.Client().Get(ts.URL + "/ready")
		if err != nil {
			t.Error(err)
			statuses <- 0
			return
		}
		resp.Body.Close()
		statuses <- resp.StatusCode
	}
	wg.Add(1)
	go get()
	<-started // the round runs; the others join it
	for range probes - 1 {
		wg.Add(1)
		go get()
	}
	// The server cannot tell us the joiners are waiting; give them time to
	// arrive. Were they to start rounds of their own, runs would show it.
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a probe got %d", s)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d rounds of checks for %d concurrent probes, want 1", n, probes)
	}
}

func TestProbesAreNotRateLimited(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.RateLimits = RateLimits{Enabled: true,
			PerIP: RateLimit{Rate: 0.001, Burst: 1}, PerUser: RateLimit{Rate: 0.001, Burst: 1}, Login: RateLimit{Rate: 0.001, Burst: 1}}
	})
	// The one request this address may make.
	if status, body := ts.do(t, "GET", "/_matrix/client/versions", "", nil); status != http.StatusOK {
		t.Fatalf("versions: %d %v", status, body)
	}
	status, body := ts.do(t, "GET", "/_matrix/client/versions", "", nil)
	wantError(t, status, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	for range 5 {
		for _, path := range []string{"/health", "/ready"} {
			if status, body := ts.do(t, "GET", path, "", nil); status != http.StatusOK {
				t.Fatalf("%s while the address is limited: %d %v", path, status, body)
			}
		}
	}
}
