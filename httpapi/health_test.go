package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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
		// Long enough for the database check to answer on a loaded
		// machine: only "stuck" is to time out.
		c.Options.ReadyTimeout = 2 * time.Second
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
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("/ready took %v with a 2s timeout", d)
	}
}

func TestConcurrentReadyRequestsShareOneRoundOfChecks(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	ts := newTestServer(t, func(c *testServerConfig) {
		// The round must outlast the probes' arrival however slow the
		// machine is (the 2s default would time the check out).
		c.Options.ReadyTimeout = time.Minute
		c.Options.ReadinessChecks = []ReadinessCheck{{Name: "slow", Check: func(ctx context.Context) error {
			runs.Add(1)
			select { // a round started after the release need not be waited for
			case started <- struct{}{}:
			default:
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}}
	})
	// Count the probes as they reach the server, so as to release the
	// round only once every one has arrived.
	var arrived atomic.Int32
	h := ts.API.Handler()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer front.Close()
	const probes = 8
	statuses := make(chan int, probes)
	var wg sync.WaitGroup
	get := func() {
		defer wg.Done()
		resp, err := front.Client().Get(front.URL + "/ready")
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
	// The server cannot tell us the joiners are waiting on the round, only
	// that their requests arrived: wait for that, then give them a moment
	// more to reach the round. Were they to start rounds of their own,
	// runs would show it.
	deadline := time.Now().Add(30 * time.Second)
	for arrived.Load() < probes {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d probes reached the server", arrived.Load(), probes)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	// Counted while the round still runs: a probe that (on a very slow
	// machine) reaches the server only after the release may rightly
	// start a round of its own.
	n := runs.Load()
	close(release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a probe got %d", s)
		}
	}
	if n != 1 {
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
