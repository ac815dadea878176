package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// client speaks the Client-Server API to one homeserver. It is shared by
// every simulated user: the access token travels with each call.
type client struct {
	base    string
	http    *http.Client
	timeout time.Duration // per request attempt

	// Rate limiting: a 429 is retried after the server's retry_after_ms
	// (capped at maxRetryWait) for as long as the call has been retrying
	// less than retryBudget. Setup retries until -max-duration (a server
	// that throttles registration only makes it slow); loadPhase lowers
	// the budget to -timeout, so that a request throttled for good is
	// counted, not waited on for ever.
	retryBudget  time.Duration
	maxRetryWait time.Duration
	rateLimited  atomic.Int64 // 429 answers seen
	rateWaited   atomic.Int64 // nanoseconds spent waiting on them
}

// newClient tunes the transport so that the client is not the bottleneck:
// enough idle connections for every concurrent caller, no proxy (the
// target is loopback), no compression.
func newClient(base string, timeout time.Duration, conns int) *client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 8,
		MaxIdleConnsPerHost: conns + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &client{
		base:         base,
		http:         &http.Client{Transport: tr},
		timeout:      timeout,
		retryBudget:  math.MaxInt64,
		maxRetryWait: 10 * time.Second,
	}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// loadPhase switches from setup to load. Call it before starting the load's
// goroutines and after setup's have ended: retryBudget is not synchronised.
func (c *client) loadPhase() { c.retryBudget = c.timeout }

// result is the outcome of one call: the last attempt's answer, or the
// transport error that ended it.
type result struct {
	Method, Path string
	Status       int
	Body         []byte
	ErrCode      string
	RetryAfter   string // the Retry-After header of a 429
	Err          error
	Start, Done  time.Time // of the last attempt: request written … body read
}

func (r result) ok() bool { return r.Err == nil && r.Status >= 200 && r.Status < 300 }

func (r result) latency() time.Duration { return r.Done.Sub(r.Start) }

// kind is the bucket the result is counted in: "403 M_FORBIDDEN",
// "502", "transport: connection refused".
func (r result) kind() string {
	if r.Err != nil {
		return "transport: " + transportKind(r.Err)
	}
	if r.ErrCode != "" {
		return fmt.Sprintf("%d %s", r.Status, r.ErrCode)
	}
	return strconv.Itoa(r.Status)
}

// String names the request and the answer, for messages that abort a run.
func (r result) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s %s: %v", r.Method, r.Path, r.Err)
	}
	body := string(bytes.TrimSpace(r.Body))
	if len(body) > 400 {
		body = body[:400] + "…"
	}
	return fmt.Sprintf("%s %s: status %d: %s", r.Method, r.Path, r.Status, body)
}

// decode parses a 2xx answer into out.
func (r result) decode(out any) error {
	if err := json.Unmarshal(r.Body, out); err != nil {
		return fmt.Errorf("%s: response is not the expected JSON: %v", r, err)
	}
	return nil
}

func transportKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local ports left"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "other"
}

// call sends one request (body marshalled as JSON unless nil) and reads the
// whole answer. A 429 is retried after the server's retry_after_ms (bounded,
// see retryBudget); every other answer, and transport errors, are returned
// as they are.
// reqTimeout bounds each attempt; 0 means the client's -timeout.
func (c *client) call(ctx context.Context, method, path, token string, body any, reqTimeout time.Duration) result {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return result{Method: method, Path: path, Err: err}
		}
	}
	if reqTimeout == 0 {
		reqTimeout = c.timeout
	}
	first := time.Now()
	for {
		r := c.once(ctx, method, path, token, payload, reqTimeout)
		if r.Status != http.StatusTooManyRequests {
			return r
		}
		c.rateLimited.Add(1)
		wait := min(retryAfter(r), c.maxRetryWait)
		if time.Since(first)+wait > c.retryBudget {
			return r
		}
		c.rateWaited.Add(int64(wait))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return r
		}
	}
}

// retryAfter is how long a 429 asks the client to wait: the body's
// retry_after_ms, else the Retry-After header's seconds, else one second.
func retryAfter(r result) time.Duration {
	var body struct {
		RetryAfterMS *int64 `json:"retry_after_ms"`
	}
	if json.Unmarshal(r.Body, &body) == nil && body.RetryAfterMS != nil {
		return max(time.Duration(*body.RetryAfterMS)*time.Millisecond, 10*time.Millisecond)
	}
	if s, err := strconv.Atoi(r.RetryAfter); err == nil && s >= 0 {
		return max(time.Duration(s)*time.Second, 10*time.Millisecond)
	}
	return time.Second
}

func (c *client) once(ctx context.Context, method, path, token string, payload []byte, timeout time.Duration) result {
	r := result{Method: method, Path: path}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		r.Err = err
		return r
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r.Start = time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		r.Done, r.Err = time.Now(), err
		return r
	}
	r.Body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	r.Done, r.Status, r.RetryAfter = time.Now(), resp.StatusCode, resp.Header.Get("Retry-After")
	if err != nil {
		r.Err = fmt.Errorf("reading the answer (status %d): %w", resp.StatusCode, err)
		return r
	}
	if !r.ok() {
		var e struct {
			ErrCode string `json:"errcode"`
		}
		if json.Unmarshal(r.Body, &e) == nil {
			r.ErrCode = e.ErrCode
		}
	}
	if r.Status == http.StatusTooManyRequests && r.ErrCode == "" {
		r.ErrCode = "M_LIMIT_EXCEEDED" // a proxy's 429 counts the same
	}
	return r
}

// pathSegment escapes a Matrix ID ("!room:server", "$event") for use as one
// path segment; the sigils and ':' are escaped too, as the spec's examples do.
func pathSegment(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// checkTarget validates -url and returns the base URL without a trailing
// slash. Unless allowRemote, only loopback hosts are accepted: a load tool
// pointed at someone else's server by a typo is an attack.
func checkTarget(raw string, allowRemote bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("-url %q: want http://host:port or https://host:port", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("-url %q: want a base URL without credentials, query or fragment", raw)
	}
	base := strings.TrimRight(u.String(), "/")
	if allowRemote {
		return base, nil
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return base, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return base, nil
	}
	return "", fmt.Errorf("-url %q: %s is not a loopback address; pass -allow-remote to load a server elsewhere", raw, u.Hostname())
}
