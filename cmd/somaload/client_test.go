package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckTargetAcceptsOnlyLoopbackUnlessAllowed(t *testing.T) {
	for _, tc := range []struct {
		url, want   string
		allowRemote bool
		wantErr     string
	}{
		{url: "http://127.0.0.1:8008/", want: "http://127.0.0.1:8008"},
		{url: "http://127.0.0.2:8008", want: "http://127.0.0.2:8008"},
		{url: "http://[::1]:8008", want: "http://[::1]:8008"},
		{url: "http://[::ffff:127.0.0.1]:8008", want: "http://[::ffff:127.0.0.1]:8008"},
		{url: "https://LOCALHOST:8448/prefix/", want: "https://LOCALHOST:8448/prefix"},
		{url: "http://soma.localhost", want: "http://soma.localhost"},
		{url: "http://matrix.example.org", wantErr: "not a loopback address"},
		{url: "http://10.0.0.1:8008", wantErr: "not a loopback address"},
		{url: "http://localhost.example.org", wantErr: "not a loopback address"},
		{url: "http://matrix.example.org", allowRemote: true, want: "http://matrix.example.org"},
		{url: "127.0.0.1:8008", wantErr: "want http://"},
		{url: "ftp://127.0.0.1", wantErr: "want http://"},
		{url: "http://127.0.0.1:8008?x=1", wantErr: "without credentials, query or fragment"},
	} {
		got, err := checkTarget(tc.url, tc.allowRemote)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("checkTarget(%q) = %q, %v; want an error with %q", tc.url, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("checkTarget(%q) = %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}

// A 429 M_LIMIT_EXCEEDED is retried after retry_after_ms (capped), counted
// apart, and only the last attempt's answer is returned.
func TestCallHonoursRetryAfterAndCountsRateLimits(t *testing.T) {
	const limited = `{"errcode":"M_LIMIT_EXCEEDED"}`
	for _, tc := range []struct {
		name             string
		limitedFirst     int    // answers that are 429 before a 200
		body429          string // the 429's body
		retryAfterHeader string
		maxWait          time.Duration // the client's cap on one wait
		retryBudget      time.Duration
		wantStatus       int
		wantLimited      [2]int64 // at least, at most
		tookMin, tookMax time.Duration
	}{
		{"retried after retry_after_ms", 2, `{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":40}`, "", time.Minute, time.Minute,
			200, [2]int64{2, 2}, 80 * time.Millisecond, 10 * time.Second},
		{"a huge retry_after_ms is capped", 1, `{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":600000}`, "", 50 * time.Millisecond, time.Minute,
			200, [2]int64{1, 1}, 50 * time.Millisecond, 10 * time.Second},
		// Retry-After: 2, capped at 1.5s: longer than the default second.
		{"no retry_after_ms: the Retry-After header", 1, limited, "2", 1500 * time.Millisecond, time.Minute,
			200, [2]int64{1, 1}, 1400 * time.Millisecond, 10 * time.Second},
		{"no retry_after_ms nor Retry-After: one second", 1, limited, "", time.Minute, time.Minute,
			200, [2]int64{1, 1}, 900 * time.Millisecond, 10 * time.Second},
		// The budget leaves room for at least one retry however slow the
		// first attempt is (up to 1.8s), and at most 10 attempts (at 0,
		// 200ms, …, 1.8s); 1000 retries would take 200s.
		{"gives up when the retry budget is spent", 1000, `{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":200}`, "", time.Minute, 2 * time.Second,
			429, [2]int64{2, 10}, 200 * time.Millisecond, 15 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(calls.Add(1)) <= tc.limitedFirst {
					if tc.retryAfterHeader != "" {
						w.Header().Set("Retry-After", tc.retryAfterHeader)
					}
					w.WriteHeader(http.StatusTooManyRequests)
					_, _ = w.Write([]byte(tc.body429))
					return
				}
				_, _ = w.Write([]byte(`{"event_id":"$sent"}`))
			}))
			defer srv.Close()
			c := newClient(srv.URL, 5*time.Second, 1)
			c.retryBudget, c.maxRetryWait = tc.retryBudget, tc.maxWait
			start := time.Now()
			r := c.send(context.Background(), user{AccessToken: "t"}, "!r:x", "txn", map[string]any{"body": "hi"})
			took := time.Since(start)
			if n := c.rateLimited.Load(); r.Status != tc.wantStatus || n < tc.wantLimited[0] || n > tc.wantLimited[1] {
				t.Errorf("status %d, %d rate limited; want %d, %v", r.Status, n, tc.wantStatus, tc.wantLimited)
			}
			if took < tc.tookMin || took > tc.tookMax {
				t.Errorf("took %s, want between %s and %s", took, tc.tookMin, tc.tookMax)
			}
			if tc.wantStatus == 429 && r.kind() != "429 M_LIMIT_EXCEEDED" {
				t.Errorf("kind %q", r.kind())
			}
		})
	}
}

// Bad flags stop the tool before it sends anything: the test would fail
// to connect otherwise, as nothing listens on port 1.
func TestFlagsAreCheckedBeforeAnyRequest(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{nil, 2, "Usage:"},
		{[]string{"help"}, 0, "Usage:"},
		{[]string{"flood"}, 2, `unknown command "flood"`},
		{[]string{"send", "-h"}, 0, "-messages"},
		{[]string{"joinstorm", "-h"}, 0, "-users"},
		{[]string{"syncwake", "-h"}, 0, "-pairs"},
		{[]string{"send", "-url", "http://matrix.example.org"}, 2, "not a loopback address"},
		{[]string{"send", "-url", "http://127.0.0.1:1", "-users", "0"}, 2, "at least 1"},
		{[]string{"joinstorm", "-url", "http://127.0.0.1:1", "-max-duration", "0"}, 2, "every run is bounded"},
		{[]string{"syncwake", "-url", "http://127.0.0.1:1", "extra"}, 2, `unexpected argument "extra"`},
	} {
		var stdout, stderr strings.Builder
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if out := stdout.String() + stderr.String(); code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
			t.Errorf("somaload %q: exit %d, want %d with %q in:\n%s", tc.args, code, tc.wantCode, tc.wantOut, out)
		}
	}
}
