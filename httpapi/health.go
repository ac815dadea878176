package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Probe paths for orchestrators and load balancers.
const (
	healthPath = "/health"
	readyPath  = "/ready"
)

// defaultReadyTimeout bounds a readiness check when Options leave it unset.
const defaultReadyTimeout = 2 * time.Second

// ReadinessCheck is a condition GET /ready requires besides the database
// answering (which the Server always checks, under the name "database").
type ReadinessCheck struct {
	// Name is the check's key in the /ready body; names must differ.
	Name string
	// Check returns nil when the condition holds. It must honour ctx.
	Check func(ctx context.Context) error
}

// Check outcomes, as /ready reports them.
const (
	checkOK      = "ok"
	checkFailed  = "failed"
	checkTimeout = "timeout"
)

// readyReport is the body of GET /ready.
type readyReport struct {
	Status string            `json:"status"` // "ok" or "unavailable"
	Checks map[string]string `json:"checks"` // name → checkOK, checkFailed or checkTimeout
}

// readiness runs the checks, at most one round at a time: a request
// arriving while a round runs waits for that round's report. /ready is
// answered before rate limiting, so this is what bounds the database work
// a flood of probes causes.
type readiness struct {
	checks  []ReadinessCheck
	timeout time.Duration
	log     zerolog.Logger

	mu      sync.Mutex
	running *readyRound // nil when no round runs
}

type readyRound struct {
	done   chan struct{}
	report readyReport // set before done closes
}

func newReadiness(db ReadinessCheck, more []ReadinessCheck, timeout time.Duration, log zerolog.Logger) *readiness {
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	return &readiness{checks: append([]ReadinessCheck{db}, more...), timeout: timeout, log: log}
}

// report returns the outcome of the current round, starting one when none
// runs, or ctx's error when the caller gives up first.
func (rd *readiness) report(ctx context.Context) (readyReport, error) {
	rd.mu.Lock()
	round := rd.running
	if round == nil {
		round = &readyRound{done: make(chan struct{})}
		rd.running = round
		// The round runs on its own: a caller hanging up must not fail it
		// for the callers sharing it.
		go rd.run(round)
	}
	rd.mu.Unlock()
	select {
	case <-round.done:
		return round.report, nil
	case <-ctx.Done():
		return readyReport{}, ctx.Err()
	}
}

// run runs every check at once under one deadline. A check still running
// at the deadline counts as timed out (and is left to finish on its own),
// so that a check ignoring its context cannot wedge /ready.
func (rd *readiness) run(round *readyRound) {
	ctx, cancel := context.WithTimeout(context.Background(), rd.timeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(rd.checks))
	for _, c := range rd.checks {
		go func() { results <- result{c.Name, c.Check(ctx)} }()
	}
	errs := make(map[string]error, len(rd.checks))
collect:
	for range rd.checks {
		select {
		case res := <-results:
			errs[res.name] = res.err
		case <-ctx.Done():
			break collect
		}
	}

	rep := readyReport{Status: "ok", Checks: make(map[string]string, len(rd.checks))}
	for _, c := range rd.checks {
		err, done := errs[c.Name]
		switch {
		case !done:
			err = ctx.Err()
			rep.Checks[c.Name] = checkTimeout
		case err == nil:
			rep.Checks[c.Name] = checkOK
			continue
		case errors.Is(err, context.DeadlineExceeded):
			rep.Checks[c.Name] = checkTimeout
		default:
			rep.Checks[c.Name] = checkFailed
		}
		rep.Status = "unavailable"
		// The body says only which check failed: the error may name hosts
		// and users of the database, and /ready answers anyone.
		rd.log.Warn().Err(err).Str("check", c.Name).Msg("not ready")
	}

	rd.mu.Lock()
	round.report = rep
	rd.running = nil
	rd.mu.Unlock()
	close(round.done)
}

// withProbes answers GET (and HEAD) /health and /ready ahead of next, the
// client API: ahead of its rate limits, so that a busy server's own probes
// are never refused with 429 (an orchestrator would restart it), and of its
// access log, which probes every few seconds would flood.
func (s *Server) withProbes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case healthPath, readyPath:
		default:
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, matrixError(http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Unrecognized request"))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == healthPath {
			// Liveness: answering at all is the proof.
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		}
		rep, err := s.ready.report(r.Context())
		if err != nil {
			return // the prober hung up
		}
		status := http.StatusOK
		if rep.Status != "ok" {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, rep)
	})
}

// databaseCheck is the readiness check every Server runs: the database
// answers a trivial query and holds the schema this build migrated it to.
func (s *Server) databaseCheck() ReadinessCheck {
	return ReadinessCheck{Name: "database", Check: func(ctx context.Context) error { return s.store.Ping(ctx) }}
}
