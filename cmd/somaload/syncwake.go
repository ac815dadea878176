package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type syncWakeFigures struct {
	report
	// RemoteURL is -remote-url: the receivers' server, joined to the
	// senders' rooms over federation ("" when both sides are on URL).
	RemoteURL string `json:"remote_url,omitempty"`
	Pairs     int    `json:"pairs"`
	Rounds    int    `json:"rounds"`
	// Woken rounds are those whose event reached the receiver; Missed ones
	// did not within the long-poll time; Mismatched ones came back with
	// another event ID than the send answered with.
	Woken      int64 `json:"woken"`
	Missed     int64 `json:"missed"`
	Mismatched int64 `json:"mismatched"`
	// WakeAfterResponse runs from the send's answer to the /sync answer
	// carrying the event (negative when /sync answered first);
	// WakeAfterStart from the moment the send request left.
	WakeAfterResponse summary `json:"wake_after_send_response"`
	WakeAfterStart    summary `json:"wake_after_send_start"`
	SendLatency       summary `json:"send_latency"`
	SyncTimeoutMS     int64   `json:"sync_timeout_ms"`
	SettleMS          int64   `json:"settle_ms"`
}

// wakePair is a sender and a receiver sharing a room; since is where the
// receiver's next /sync starts.
type wakePair struct {
	sender, receiver user
	roomID, since    string
}

// syncWake holds what the rounds of all pairs measure.
type syncWake struct {
	e                       *runEnv
	recv                    *client // the receivers' server: e.c, or -remote-url's
	syncTimeout, settle     time.Duration
	afterResp, afterStart   latencies
	sendLat                 latencies
	errs                    errorCounts
	woken, missed, mismatch atomic.Int64
}

func runSyncWake(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet("syncwake", "syncwake -url URL [-remote-url URL] [-pairs 20] [-rounds 20]", stderr, &o)
	remoteURL := fs.String("remote-url", "", "the receivers' homeserver `URL`, when not -url's: they register there and join the senders' rooms over federation (loopback only unless -allow-remote; -token-file holds -url's accounts only)")
	pairs := fs.Int("pairs", 20, "sender/receiver pairs, each in its own room, all at once")
	rounds := fs.Int("rounds", 20, "messages each pair sends, one after another")
	syncTimeout := fs.Duration("sync-timeout", 30*time.Second, "the receivers' /sync timeout (long-poll time)")
	settle := fs.Duration("settle", 200*time.Millisecond, "wait after the receiver's /sync leaves before sending, so that the server has parked it")
	conc := fs.Int("concurrency", 16, "registrations and joins in flight at once during setup")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	switch {
	case *pairs < 1 || *rounds < 1 || *conc < 1:
		return usageError(fs, "-pairs, -rounds and -concurrency must be at least 1")
	case *syncTimeout < time.Millisecond || *settle < 0:
		return usageError(fs, "-sync-timeout must be positive and -settle not negative")
	}
	if code := o.check(fs); code != 0 {
		return code
	}
	if *remoteURL != "" {
		base, err := checkTarget(*remoteURL, o.allowRemote)
		if err != nil {
			return usageError(fs, "-remote-url: %v", err)
		}
		if base == o.url {
			return usageError(fs, "-remote-url is -url: leave it out to measure within one server")
		}
		*remoteURL = base
	}
	ctx, cancel := o.runContext(ctx)
	defer cancel()
	e := newRunEnv(o, max(2**pairs, *conc), stderr)
	defer e.c.close()
	recv := e.c
	if *remoteURL != "" {
		recv = newClient(*remoteURL, o.timeout, max(*pairs, *conc))
		defer recv.close()
	}

	// Setup: each pair's sender creates its room, the receiver joins (over
	// federation, through the sender's server, when it is on -remote-url)
	// and takes a first /sync to know where to start.
	senders, receivers, err := e.wakeAccounts(ctx, recv, *pairs, *conc)
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	ps := make([]*wakePair, *pairs)
	if err := forEach(ctx, *pairs, *conc, func(ctx context.Context, i int) error {
		p := &wakePair{sender: senders[i], receiver: receivers[i]}
		ps[i] = p
		var err error
		if p.roomID, err = e.c.createRoom(ctx, p.sender, fmt.Sprintf("somaload %s wake %d", e.runID, i)); err != nil {
			return err
		}
		var via []string
		if recv != e.c {
			origin, err := serverName(p.sender.UserID)
			if err != nil {
				return err
			}
			via = append(via, origin)
		}
		if r := recv.join(ctx, p.receiver, p.roomID, via...); !r.ok() {
			return fmt.Errorf("%s joining %s: %s", p.receiver.UserID, p.roomID, r)
		}
		r := recv.sync(ctx, p.receiver, "", 0)
		var sr syncResponse
		if !r.ok() {
			return fmt.Errorf("%s's first /sync: %s", p.receiver.UserID, r)
		}
		if err := r.decode(&sr); err != nil {
			return err
		}
		p.since = sr.NextBatch
		return nil
	}); err != nil {
		return e.setupFailed(ctx, err)
	}
	setup := time.Since(e.begin)
	e.logf("%d pairs × %d rounds; /sync timeout %s, settle %s", *pairs, *rounds, *syncTimeout, *settle)
	if recv != e.c {
		e.logf("senders on %s, receivers on %s (joined over federation)", o.url, *remoteURL)
	}

	e.c.loadPhase()
	recv.loadPhase()
	w := &syncWake{e: e, recv: recv, syncTimeout: *syncTimeout, settle: *settle}
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < *rounds && ctx.Err() == nil; r++ {
				w.round(ctx, p, fmt.Sprintf("%s.%d.%d", e.runID, i, r))
			}
		}()
	}
	wg.Wait()

	f := syncWakeFigures{
		report:            e.baseReport("syncwake", setup, time.Since(e.begin), &w.errs, ctx),
		RemoteURL:         *remoteURL,
		Pairs:             *pairs,
		Rounds:            *rounds,
		Woken:             w.woken.Load(),
		Missed:            w.missed.Load(),
		Mismatched:        w.mismatch.Load(),
		WakeAfterResponse: w.afterResp.summary(),
		WakeAfterStart:    w.afterStart.summary(),
		SendLatency:       w.sendLat.summary(),
		SyncTimeoutMS:     syncTimeout.Milliseconds(),
		SettleMS:          settle.Milliseconds(),
	}
	if recv != e.c {
		f.RateLimited += recv.rateLimited.Load()
		f.RateLimitWaitS += time.Duration(recv.rateWaited.Load()).Seconds()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "syncwake: %d of %d rounds woken, %d missed, %d with another event ID (%d pairs × %d rounds; setup %.1fs)\n",
		f.Woken, f.Pairs*f.Rounds, f.Missed, f.Mismatched, f.Pairs, f.Rounds, f.SetupS)
	if f.RemoteURL != "" {
		fmt.Fprintf(&b, "senders on %s, receivers on %s over federation\n", f.URL, f.RemoteURL)
	}
	fmt.Fprintf(&b, "wake after send response: %s\n", f.WakeAfterResponse)
	fmt.Fprintf(&b, "wake after send start:    %s\n", f.WakeAfterStart)
	fmt.Fprintf(&b, "send latency:             %s\n", f.SendLatency)
	b.WriteString(f.commonLines(&w.errs))
	return e.finish(stdout, b.String(), f, f.Stopped)
}

// seen is what the receiver's long-poll found.
type seen struct {
	at      time.Time // the /sync answer carrying the event was read
	eventID string
	since   string  // the receiver's next since
	failed  *result // the /sync that failed instead
}

// round has the receiver long-poll /sync, waits for settle, sends one
// message marked with marker, and measures when the receiver sees it.
func (w *syncWake) round(ctx context.Context, p *wakePair, marker string) {
	c := w.e.c
	rctx, cancel := context.WithTimeout(ctx, w.settle+w.syncTimeout+2*c.timeout)
	defer cancel()
	got := make(chan seen, 1)
	go func() {
		since := p.since
		for {
			r := w.recv.sync(rctx, p.receiver, since, w.syncTimeout)
			var sr syncResponse
			if !r.ok() {
				got <- seen{since: since, failed: &r}
				return
			}
			if err := r.decode(&sr); err != nil {
				r.Err = err
				got <- seen{since: since, failed: &r}
				return
			}
			if sr.NextBatch != "" {
				since = sr.NextBatch
			}
			for _, ev := range sr.Rooms.Join[p.roomID].Timeline.Events {
				if ev.Content["somaload_marker"] == marker {
					got <- seen{at: r.Done, eventID: ev.EventID, since: since}
					return
				}
			}
		}
	}()

	select {
	case <-time.After(w.settle):
	case <-rctx.Done():
	}
	content := map[string]any{"msgtype": "m.text", "body": "somaload wake " + marker, "somaload_marker": marker}
	sent := c.send(rctx, p.sender, p.roomID, "somaload."+marker, content)
	var res struct {
		EventID string `json:"event_id"`
	}
	if !sent.ok() || sent.decode(&res) != nil {
		cancel()
		p.since = (<-got).since
		if kind := sent.kind(); ctx.Err() == nil {
			if sent.ok() {
				kind = fmt.Sprintf("%d without an event_id", sent.Status)
			}
			w.errs.add(kind, sent.String())
		}
		return
	}
	s := <-got
	p.since = s.since
	switch {
	case s.failed == nil:
	case ctx.Err() != nil:
		return // the run was cut short
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		w.missed.Add(1)
		return
	default:
		w.errs.add(s.failed.kind(), s.failed.String())
		return
	}
	w.woken.Add(1)
	w.afterResp.add(s.at.Sub(sent.Done))
	w.afterStart.add(s.at.Sub(sent.Start))
	w.sendLat.add(sent.latency())
	if s.eventID != res.EventID {
		w.mismatch.Add(1)
	}
}

// wakeAccounts returns the pairs' senders and receivers. On one server
// they alternate in e.users (and so in -token-file); with the receivers on
// recv, another server, the senders come from e.users and the receivers
// are registered there.
func (e *runEnv) wakeAccounts(ctx context.Context, recv *client, pairs, conc int) (senders, receivers []user, err error) {
	if recv == e.c {
		accounts, err := e.users(ctx, 2*pairs, conc)
		if err != nil {
			return nil, nil, err
		}
		for i := range pairs {
			senders = append(senders, accounts[2*i])
			receivers = append(receivers, accounts[2*i+1])
		}
		return senders, receivers, nil
	}
	if senders, err = e.users(ctx, pairs, conc); err != nil {
		return nil, nil, err
	}
	if receivers, err = e.register(ctx, recv, pairs, conc); err != nil {
		return nil, nil, err
	}
	return senders, receivers, nil
}
