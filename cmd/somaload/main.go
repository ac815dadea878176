// Command somaload loads a Matrix homeserver through the Client-Server API
// over HTTP and reports throughput and latency percentiles. It speaks only
// the spec, so it measures Soma and any other conforming homeserver alike.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

const usage = `somaload loads a Matrix homeserver through the Client-Server API.

Usage:
  somaload send      -url URL [-users 16] [-rooms 1] [-messages 2000] [-concurrency N] [-duration D]
  somaload joinstorm -url URL [-users 1000] [-concurrency 32]
  somaload syncwake  -url URL [-remote-url URL] [-pairs 20] [-rounds 20]
  somaload bigroom   -url URL [-members 1000] [-syncers N] [-messages 50] [-metrics-url URL]
  somaload COMMAND -h    (the flags of a command)

Commands:
  send       registers users, creates rooms (public_chat) owned by the first
             user, joins the others to every room, then sends m.room.message
             events from all users at once, spread over the rooms; reports
             events/s and send latency.
  joinstorm  registers users and one room; all users join it at once;
             reports joins/s and join latency.
  syncwake   pairs of users share a room; the receiver long-polls /sync while
             the sender sends; reports the time from the send's answer (and
             from the send's start) to the receiver's /sync returning the event.
             With -remote-url, the receivers are on that server and join the
             senders' rooms over federation (through the senders' server,
             named by their user IDs): the figures then include the
             federation path between the two servers.
  bigroom    one room with many members; the owner sends messages, first with
             nobody syncing, then with every syncer parked in /sync (each
             message once all have the previous one); with -metrics-url,
             reports the server's CPU per message in both phases and per
             woken /sync, and the wake-up latency.

Flags every command takes:
  -url URL           homeserver base URL (default http://127.0.0.1:8008); only
                     loopback hosts unless -allow-remote
  -allow-remote      allow a non-loopback -url (and -remote-url, -metrics-url)
  -timeout D         per request attempt (default 30s; /sync adds its long-poll time)
  -password P        password of the accounts the tool registers
  -token-file F      reuse accounts: read users from F (JSON written by an
                     earlier run, or by hand: {"base_url": URL, "users":
                     [{"user_id": ..., "access_token": ...}]}); accounts
                     missing from it are registered and F is rewritten
  -max-duration D    the whole run, setup included, stops after D (default 5m)
  -json              print one JSON object with the figures on stdout (the
                     human-readable summary goes to stderr)

Accounts are registered with user-interactive auth (m.login.dummy) under a
random per-run prefix, so runs never collide. Non-2xx answers during the load
are counted by status and errcode, not fatal; during setup they abort the run.
429 M_LIMIT_EXCEEDED answers are retried after retry_after_ms (at most 10s a
wait; during setup until -max-duration, during the load for up to -timeout a
call) and counted apart; latencies are those of the answered attempt.
Percentiles are nearest-rank over every sample.

Exit status: 0 when the run completed (errors are in the figures), 1 when
setup failed or the run was cut short, 2 for bad usage.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "send":
		return runSend(ctx, args[1:], stdout, stderr)
	case "joinstorm":
		return runJoinStorm(ctx, args[1:], stdout, stderr)
	case "syncwake":
		return runSyncWake(ctx, args[1:], stdout, stderr)
	case "bigroom":
		return runBigRoom(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "somaload: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// options are the flags every command takes.
type options struct {
	url         string
	allowRemote bool
	timeout     time.Duration
	password    string
	tokenFile   string
	maxDuration time.Duration
	json        bool
}

// newFlagSet makes a command's flag set with the common flags on it.
func newFlagSet(name, synopsis string, stderr io.Writer, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: somaload %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8008", "homeserver base `URL` (loopback only unless -allow-remote)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a non-loopback -url")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "per request attempt (/sync adds its long-poll time)")
	fs.StringVar(&o.password, "password", "somaload-password", "password of the accounts the tool registers")
	fs.StringVar(&o.tokenFile, "token-file", "", "reuse accounts listed in this JSON `file`; missing ones are registered and the file rewritten")
	fs.DurationVar(&o.maxDuration, "max-duration", 5*time.Minute, "stop the whole run, setup included, after this long")
	fs.BoolVar(&o.json, "json", false, "print one JSON object with the figures on stdout")
	return fs
}

// parseFlags parses args; when it returns done, the command exits with code
// (help was asked for, or the flags were wrong).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "somaload %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, true
	}
	return 0, false
}

// usageError reports a bad flag value the way flag does.
func usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(fs.Output(), "somaload %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	return 2
}

func (o *options) check(fs *flag.FlagSet) int {
	if o.timeout <= 0 {
		return usageError(fs, "-timeout must be positive")
	}
	if o.maxDuration <= 0 {
		return usageError(fs, "-max-duration must be positive: every run is bounded")
	}
	base, err := checkTarget(o.url, o.allowRemote)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	o.url = base
	return 0
}

// runEnv is what a command runs with once its flags are checked.
type runEnv struct {
	opts   options
	c      *client
	runID  string // random, names this run's accounts, rooms and txn IDs
	stderr io.Writer
	begin  time.Time
}

func newRunEnv(o options, conns int, stderr io.Writer) *runEnv {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return &runEnv{
		opts:   o,
		c:      newClient(o.url, o.timeout, conns),
		runID:  hex.EncodeToString(id),
		stderr: stderr,
		begin:  time.Now(),
	}
}

// logf writes a progress line to stderr.
func (e *runEnv) logf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "[%7.2fs] %s\n", time.Since(e.begin).Seconds(), fmt.Sprintf(format, args...))
}

// setupFailed reports why setup stopped; a run cut short by -max-duration
// or a signal says so instead of showing the request it interrupted.
func (e *runEnv) setupFailed(ctx context.Context, err error) int {
	if why := stopReason(ctx); why != "" {
		fmt.Fprintf(e.stderr, "somaload: setup did not finish: %s (%v)\n", why, err)
	} else {
		fmt.Fprintf(e.stderr, "somaload: setup failed: %v\n", err)
	}
	return 1
}

// stopReason says why the run's context ended, or "" if it has not.
func stopReason(ctx context.Context) string {
	switch {
	case ctx.Err() == nil:
		return ""
	case errors.Is(context.Cause(ctx), errMaxDuration):
		return "-max-duration reached"
	default:
		return "interrupted"
	}
}

var errMaxDuration = errors.New("-max-duration reached")

// runContext bounds the whole run by -max-duration.
func (o options) runContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, o.maxDuration, errMaxDuration)
}

// forEach calls fn(ctx, i) for every i in [0, n) from up to conc goroutines.
// It stops handing out work at the first error, which it returns.
func forEach(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= n || first != nil || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for w := 0; w < min(conc, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, ok := take(); ok; i, ok = take() {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && next < n {
		first = ctx.Err()
	}
	return first
}

// report is what every command reports; each embeds it in its own figures.
type report struct {
	Command        string         `json:"command"`
	URL            string         `json:"url"`
	RunID          string         `json:"run_id"`
	SetupS         float64        `json:"setup_s"`
	ElapsedS       float64        `json:"elapsed_s"`
	Errors         int            `json:"errors"`
	ErrorsByKind   map[string]int `json:"errors_by_kind"`
	RateLimited    int64          `json:"rate_limited"`
	RateLimitWaitS float64        `json:"rate_limit_wait_s"`
	Stopped        string         `json:"stopped,omitempty"`
}

func (e *runEnv) baseReport(command string, setup, elapsed time.Duration, errs *errorCounts, ctx context.Context) report {
	return report{
		Command:        command,
		URL:            e.opts.url,
		RunID:          e.runID,
		SetupS:         setup.Seconds(),
		ElapsedS:       elapsed.Seconds(),
		Errors:         errs.total(),
		ErrorsByKind:   errs.byKind(),
		RateLimited:    e.c.rateLimited.Load(),
		RateLimitWaitS: time.Duration(e.c.rateWaited.Load()).Seconds(),
		Stopped:        stopReason(ctx),
	}
}

// commonLines are the summary lines every command ends with.
func (r report) commonLines(errs *errorCounts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "errors: %s\n", errs)
	fmt.Fprintf(&b, "rate limited: %d answers (waited %.1fs in all)\n", r.RateLimited, r.RateLimitWaitS)
	if r.Stopped != "" {
		fmt.Fprintf(&b, "stopped early: %s\n", r.Stopped)
	}
	return b.String()
}

// finish prints the figures: human-readable on stdout, or with -json the
// JSON object on stdout and the human-readable lines on stderr. A run cut
// short exits 1.
func (e *runEnv) finish(stdout io.Writer, human string, figures any, stopped string) int {
	if e.opts.json {
		fmt.Fprint(e.stderr, human)
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(figures); err != nil {
			fmt.Fprintf(e.stderr, "somaload: %v\n", err)
			return 1
		}
	} else {
		fmt.Fprint(stdout, human)
	}
	if stopped != "" {
		return 1
	}
	return 0
}
