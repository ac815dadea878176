package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"
)

// GatewayOptions tunes delivery to push gateways.
type GatewayOptions struct {
	// MaxAttempts bounds the tries of one push (default 5); Backoff is the
	// wait after the first failure, doubled after each (default 1s).
	MaxAttempts int
	Backoff     time.Duration
	// MaxInFlight bounds the pushes being delivered at once (default 64);
	// more wait their turn.
	MaxInFlight int
	// Timeout bounds one request (default 15s).
	Timeout time.Duration
}

// gateway posts pushes to push gateways: retried with exponential backoff
// on transport errors, 5xx and 429 (the spec asks homeservers to retry
// "for a reasonable amount of time"), never retried on other 4xx. The
// pushkeys a gateway answers as rejected lose their pushers.
type gateway struct {
	opts     GatewayOptions
	client   *http.Client
	store    PusherDeleter
	inFlight chan struct{}
	log      zerolog.Logger
}

func newGateway(o GatewayOptions, store PusherDeleter, log zerolog.Logger) *gateway {
	if o.MaxAttempts < 1 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxInFlight < 1 {
		o.MaxInFlight = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	return &gateway{
		opts: o, store: store, log: log, inFlight: make(chan struct{}, o.MaxInFlight),
		client: &http.Client{
			Timeout: o.Timeout,
			// A gateway is where the pusher says; redirects are not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// deliver sends p in the background, once a delivery slot is free; it
// returns at once when ctx ends.
func (g *gateway) deliver(ctx context.Context, p Push) {
	select {
	case g.inFlight <- struct{}{}:
	case <-ctx.Done():
		return
	}
	go func() {
		defer func() {
			<-g.inFlight
			if v := recover(); v != nil {
				g.log.Error().Interface("panic", v).Str("user_id", p.UserID).Msg("push delivery panicked")
			}
		}()
		g.send(ctx, p)
	}()
}

// gatewayAnswer is the body of a gateway's 200.
type gatewayAnswer struct {
	Rejected []string `json:"rejected"`
}

func (g *gateway) send(ctx context.Context, p Push) {
	log := g.log.With().Str("user_id", p.UserID).Str("app_id", p.AppID).Str("event_id", p.EventID).Logger()
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		log.Warn().Msg("pusher URL is not http(s); not pushed")
		return
	}
	wait := g.opts.Backoff
	for attempt := 1; ; attempt++ {
		answer, retry, err := g.post(ctx, p)
		if err == nil {
			g.reject(ctx, p, answer.Rejected, log)
			return
		}
		if !retry || attempt >= g.opts.MaxAttempts {
			log.Warn().Err(err).Int("attempts", attempt).Msg("push gateway refused the notification; giving up")
			return
		}
		log.Debug().Err(err).Int("attempt", attempt).Dur("backoff", wait).Msg("push failed; retrying")
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait *= 2
	}
}

// post makes one attempt: the answer, or an error and whether trying
// again may help.
func (g *gateway) post(ctx context.Context, p Push) (gatewayAnswer, bool, error) {
	var answer gatewayAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(p.Body))
	if err != nil {
		return answer, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return answer, ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return answer, true, err
	case resp.StatusCode == http.StatusOK:
		// A 200 whose body is not the answer is still a delivery.
		_ = json.Unmarshal(body, &answer)
		return answer, false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return answer, true, errors.New(resp.Status)
	default:
		return answer, false, errors.New(resp.Status)
	}
}

// reject removes the pusher when the gateway rejected its pushkey (each
// push carries one device, so only p's pushkey can be in the answer).
func (g *gateway) reject(ctx context.Context, p Push, rejected []string, log zerolog.Logger) {
	for _, key := range rejected {
		if key != p.Pushkey {
			continue
		}
		if err := g.store.DeletePusher(ctx, p.UserID, p.AppID, p.Pushkey); err != nil {
			log.Error().Err(err).Msg("could not delete a pusher the gateway rejected")
			return
		}
		log.Info().Msg("push gateway rejected the pushkey; pusher deleted")
		return
	}
}
