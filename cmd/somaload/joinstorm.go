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

type joinStormFigures struct {
	report
	RoomID      string  `json:"room_id"`
	Users       int     `json:"users"`
	Concurrency int     `json:"concurrency"`
	Joined      int64   `json:"joined"`
	JoinS       float64 `json:"join_s"`
	JoinsPerS   float64 `json:"joins_per_s"`
	Latency     summary `json:"latency"`
	// MembersAfter is the room's joined members as the server lists them
	// afterwards: joined + 1 (the owner) when nothing was lost; -1 if the
	// server would not say.
	MembersAfter int `json:"members_after"`
}

func runJoinStorm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet("joinstorm", "joinstorm -url URL [-users 1000] [-concurrency 32]", stderr, &o)
	users := fs.Int("users", 1000, "accounts that join the room (one more is registered to create it)")
	conc := fs.Int("concurrency", 32, "joins (and registrations) in flight at once")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *users < 1 || *conc < 1 {
		return usageError(fs, "-users and -concurrency must be at least 1")
	}
	if code := o.check(fs); code != 0 {
		return code
	}
	ctx, cancel := o.runContext(ctx)
	defer cancel()
	e := newRunEnv(o, *conc, stderr)
	defer e.c.close()

	accounts, err := e.users(ctx, *users+1, *conc)
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	owner, joiners := accounts[0], accounts[1:]
	roomID, err := e.c.createRoom(ctx, owner, "somaload "+e.runID+" join storm")
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	setup := time.Since(e.begin)
	e.logf("%d accounts join %s, %d at a time", len(joiners), roomID, *conc)

	e.c.loadPhase()
	var (
		lat    latencies
		errs   errorCounts
		next   atomic.Int64
		joined atomic.Int64
		wg     sync.WaitGroup
		start  = time.Now()
	)
	for w := 0; w < min(*conc, len(joiners)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(joiners) || ctx.Err() != nil {
					return
				}
				r := e.c.join(ctx, joiners[i], roomID)
				switch {
				case r.ok():
					lat.add(r.latency())
					joined.Add(1)
				case ctx.Err() != nil:
					return
				default:
					errs.add(r.kind(), r.String())
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)

	members := -1
	if ctx.Err() == nil {
		if n, err := e.c.joinedMembers(ctx, owner, roomID); err != nil {
			e.logf("could not count the members afterwards: %v", err)
		} else {
			members = n
		}
	}
	f := joinStormFigures{
		report:       e.baseReport("joinstorm", setup, time.Since(e.begin), &errs, ctx),
		RoomID:       roomID,
		Users:        len(joiners),
		Concurrency:  *conc,
		Joined:       joined.Load(),
		JoinS:        took.Seconds(),
		JoinsPerS:    float64(joined.Load()) / took.Seconds(),
		Latency:      lat.summary(),
		MembersAfter: members,
	}
	var b strings.Builder
	fmt.Fprintf(&b, "joinstorm: %d of %d joins in %.2fs: %.1f joins/s (%d in flight; setup %.1fs)\n",
		f.Joined, f.Users, f.JoinS, f.JoinsPerS, f.Concurrency, f.SetupS)
	fmt.Fprintf(&b, "join latency: %s\n", f.Latency)
	fmt.Fprintf(&b, "joined members afterwards: %d (expected %d)\n", f.MembersAfter, f.Joined+1)
	b.WriteString(f.commonLines(&errs))
	return e.finish(stdout, b.String(), f, f.Stopped)
}
