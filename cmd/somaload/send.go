package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type sendFigures struct {
	report
	Users       int      `json:"users"`
	Rooms       int      `json:"rooms"`
	RoomIDs     []string `json:"room_ids"`
	Concurrency int      `json:"concurrency"`
	Messages    int      `json:"messages"`
	Sent        int64    `json:"sent"`
	SendS       float64  `json:"send_s"`
	EventsPerS  float64  `json:"events_per_s"`
	Latency     summary  `json:"latency"`
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet("send", "send -url URL [-users 16] [-rooms 1] [-messages 2000] [-concurrency N] [-duration D]", stderr, &o)
	users := fs.Int("users", 16, "accounts that send; all join every room")
	rooms := fs.Int("rooms", 1, "rooms, created by the first account (public_chat)")
	messages := fs.Int("messages", 2000, "messages to send in all, spread over the rooms")
	conc := fs.Int("concurrency", 0, "sends in flight at once, each sender an account in turn (default -users)")
	duration := fs.Duration("duration", 0, "stop handing out sends after this long, even if -messages are not all sent (0: only -max-duration bounds it)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *conc == 0 {
		*conc = *users
	}
	switch {
	case *users < 1 || *rooms < 1 || *messages < 1 || *conc < 1:
		return usageError(fs, "-users, -rooms, -messages and -concurrency must be at least 1")
	case *duration < 0:
		return usageError(fs, "-duration must not be negative")
	}
	if code := o.check(fs); code != 0 {
		return code
	}
	ctx, cancel := o.runContext(ctx)
	defer cancel()
	e := newRunEnv(o, *conc, stderr)
	defer e.c.close()

	// Setup: accounts, rooms, every account in every room.
	accounts, err := e.users(ctx, *users, *conc)
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	roomIDs := make([]string, *rooms)
	if err := forEach(ctx, *rooms, *conc, func(ctx context.Context, i int) error {
		id, err := e.c.createRoom(ctx, accounts[0], fmt.Sprintf("somaload %s room %d", e.runID, i))
		roomIDs[i] = id
		return err
	}); err != nil {
		return e.setupFailed(ctx, err)
	}
	joiners := accounts[1:]
	if err := forEach(ctx, len(joiners)*len(roomIDs), *conc, func(ctx context.Context, i int) error {
		u, room := joiners[i%len(joiners)], roomIDs[i/len(joiners)]
		if r := e.c.join(ctx, u, room); !r.ok() {
			return fmt.Errorf("%s joining %s: %s", u.UserID, room, r)
		}
		return nil
	}); err != nil {
		return e.setupFailed(ctx, err)
	}
	setup := time.Since(e.begin)
	e.logf("set up %d accounts in %d rooms (%d joins); sending %d messages, %d in flight", len(accounts), len(roomIDs), len(joiners)*len(roomIDs), *messages, *conc)

	e.c.loadPhase()
	// Load: workers take message numbers from a shared counter; message i
	// goes to room i mod rooms, so every room gets its share at once.
	var (
		lat   latencies
		errs  errorCounts
		next  atomic.Int64
		sent  atomic.Int64
		wg    sync.WaitGroup
		start = time.Now()
	)
	stopAt := time.Time{}
	if *duration > 0 {
		stopAt = start.Add(*duration)
	}
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(u user) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if int(i) >= *messages || ctx.Err() != nil || (!stopAt.IsZero() && time.Now().After(stopAt)) {
					return
				}
				content := map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("somaload %s message %d", e.runID, i)}
				r := e.c.send(ctx, u, roomIDs[int(i)%len(roomIDs)], fmt.Sprintf("somaload.%s.%d", e.runID, i), content)
				switch {
				case r.ok():
					var res struct {
						EventID string `json:"event_id"`
					}
					if r.decode(&res) != nil || !strings.HasPrefix(res.EventID, "$") {
						errs.add(fmt.Sprintf("%d without an event_id", r.Status), r.String())
						continue
					}
					lat.add(r.latency())
					sent.Add(1)
				case ctx.Err() != nil:
					return // cut short by -max-duration or a signal: not the server's fault
				default:
					errs.add(r.kind(), r.String())
				}
			}
		}(accounts[w%len(accounts)])
	}
	wg.Wait()
	took := time.Since(start)

	f := sendFigures{
		report:      e.baseReport("send", setup, time.Since(e.begin), &errs, ctx),
		Users:       len(accounts),
		Rooms:       len(roomIDs),
		RoomIDs:     roomIDs,
		Concurrency: *conc,
		Messages:    *messages,
		Sent:        sent.Load(),
		SendS:       took.Seconds(),
		EventsPerS:  float64(sent.Load()) / took.Seconds(),
		Latency:     lat.summary(),
	}
	var b strings.Builder
	fmt.Fprintf(&b, "send: %d of %d messages sent in %.2fs: %.1f events/s (%d users, %d rooms, %d in flight; setup %.1fs)\n",
		f.Sent, f.Messages, f.SendS, f.EventsPerS, f.Users, f.Rooms, f.Concurrency, f.SetupS)
	fmt.Fprintf(&b, "send latency: %s\n", f.Latency)
	b.WriteString(f.commonLines(&errs))
	return e.finish(stdout, b.String(), f, f.Stopped)
}
