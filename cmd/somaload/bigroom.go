package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bigroom measures what one message costs the server in a big room: the
// send itself, and everything it sets off — every member's long-polling
// /sync waking up and answering with the message and the room's unread
// counts. It sends the same number of messages twice: first with nobody
// syncing (the baseline: the send path alone), then with the syncers
// parked in /sync, each message only once every syncer has the previous
// one (after one uncounted message that brings them all online). With
// -metrics-url it reads the server process's CPU time
// (process_cpu_seconds_total) around each phase.

type bigRoomFigures struct {
	report
	RoomID   string `json:"room_id"`
	Members  int    `json:"members"`
	Syncers  int    `json:"syncers"`
	Messages int    `json:"messages"`
	// Delivered counts (message, syncer) pairs seen; Missed those not seen
	// within the wait.
	Delivered int64 `json:"delivered"`
	Missed    int64 `json:"missed"`
	// CPU per message in ms of server process time, without and with the
	// syncers; -1 without -metrics-url.
	BaselineCPUPerMessageMS float64 `json:"baseline_cpu_per_message_ms"`
	FanoutCPUPerMessageMS   float64 `json:"fanout_cpu_per_message_ms"`
	CPUPerWokenSyncUS       float64 `json:"cpu_per_woken_sync_us"`
	// Wake runs from the send's answer to each syncer's /sync answer.
	Wake        summary `json:"wake_after_send_response"`
	SendLatency summary `json:"send_latency"`
}

func runBigRoom(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet("bigroom", "bigroom -url URL [-members 1000] [-syncers N] [-messages 50] [-metrics-url URL]", stderr, &o)
	members := fs.Int("members", 1000, "accounts in the room besides its owner, who sends")
	syncers := fs.Int("syncers", -1, "members that long-poll /sync during the second phase (default: all)")
	messages := fs.Int("messages", 50, "messages the owner sends in each phase")
	metricsURL := fs.String("metrics-url", "", "the server's Prometheus `URL` (e.g. http://127.0.0.1:9108/metrics), to read its CPU time")
	settle := fs.Duration("settle", 100*time.Millisecond, "wait after every syncer has the message before sending the next, so that all are parked again")
	wait := fs.Duration("wait", 30*time.Second, "how long each message may take to reach every syncer")
	conc := fs.Int("concurrency", 32, "registrations, joins and first syncs in flight at once during setup")
	leave := fs.Bool("leave", true, "members leave the room at the end, so that runs reusing accounts (-token-file) measure a room of the same size and nothing more")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *syncers < 0 {
		*syncers = *members
	}
	switch {
	case *members < 1 || *messages < 1 || *conc < 1:
		return usageError(fs, "-members, -messages and -concurrency must be at least 1")
	case *syncers > *members:
		return usageError(fs, "-syncers cannot exceed -members")
	case *wait <= 0 || *settle < 0:
		return usageError(fs, "-wait must be positive and -settle not negative")
	}
	if code := o.check(fs); code != 0 {
		return code
	}
	if *metricsURL != "" {
		if _, err := checkTarget(*metricsURL, o.allowRemote); err != nil {
			return usageError(fs, "-metrics-url: %v", err)
		}
	}
	ctx, cancel := o.runContext(ctx)
	defer cancel()
	e := newRunEnv(o, max(*syncers+4, *conc), stderr)
	defer e.c.close()

	accounts, err := e.users(ctx, *members+1, *conc)
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	owner, joiners := accounts[0], accounts[1:]
	roomID, err := e.c.createRoom(ctx, owner, "somaload "+e.runID+" big room")
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	e.logf("%d members join %s", len(joiners), roomID)
	if err := forEach(ctx, len(joiners), *conc, func(ctx context.Context, i int) error {
		if r := e.c.join(ctx, joiners[i], roomID); !r.ok() {
			return fmt.Errorf("%s joining: %s", joiners[i].UserID, r)
		}
		return nil
	}); err != nil {
		return e.setupFailed(ctx, err)
	}
	b := &bigRoom{e: e, roomID: roomID, owner: owner, wait: *wait, settle: *settle, metricsURL: *metricsURL}
	b.syncers = make([]*bigRoomSyncer, *syncers)
	e.logf("%d syncers take their first /sync (members lazy-loaded)", *syncers)
	if err := forEach(ctx, *syncers, *conc, func(ctx context.Context, i int) error {
		s := &bigRoomSyncer{u: joiners[i]}
		b.syncers[i] = s
		return b.firstSync(ctx, s)
	}); err != nil {
		return e.setupFailed(ctx, err)
	}
	setup := time.Since(e.begin)

	e.c.loadPhase()
	f := bigRoomFigures{RoomID: roomID, Members: len(joiners) + 1, Syncers: *syncers, Messages: *messages,
		BaselineCPUPerMessageMS: -1, FanoutCPUPerMessageMS: -1, CPUPerWokenSyncUS: -1}
	e.logf("baseline: %d messages with nobody syncing", *messages)
	baseCPU, err := b.phase(ctx, "base", *messages, false)
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	e.logf("fan-out: %d messages, each to %d parked /sync requests", *messages, *syncers)
	fanCPU, err := b.phase(ctx, "fan", *messages, true)
	if err != nil {
		return e.setupFailed(ctx, err)
	}
	if baseCPU >= 0 && fanCPU >= 0 {
		f.BaselineCPUPerMessageMS = baseCPU * 1000 / float64(*messages)
		f.FanoutCPUPerMessageMS = fanCPU * 1000 / float64(*messages)
		if *syncers > 0 {
			f.CPUPerWokenSyncUS = (f.FanoutCPUPerMessageMS - f.BaselineCPUPerMessageMS) * 1000 / float64(*syncers)
		}
	}
	if *leave {
		e.logf("%d members leave", len(joiners))
		if err := forEach(ctx, len(joiners), *conc, func(ctx context.Context, i int) error {
			if r := e.c.leave(ctx, joiners[i], roomID); !r.ok() {
				return fmt.Errorf("%s leaving: %s", joiners[i].UserID, r)
			}
			return nil
		}); err != nil {
			e.logf("leaving: %v", err)
		}
	}
	f.report = e.baseReport("bigroom", setup, time.Since(e.begin), &b.errs, ctx)
	f.Delivered, f.Missed = b.delivered.Load(), b.missed.Load()
	f.Wake, f.SendLatency = b.wake.summary(), b.sendLat.summary()

	var out strings.Builder
	fmt.Fprintf(&out, "bigroom: %d members, %d syncing; %d messages a phase; %d deliveries, %d missed (setup %.1fs)\n",
		f.Members, f.Syncers, f.Messages, f.Delivered, f.Missed, f.SetupS)
	if f.FanoutCPUPerMessageMS >= 0 {
		fmt.Fprintf(&out, "server CPU per message: %.2f ms with nobody syncing, %.2f ms with %d syncers woken (%.0f µs a woken /sync)\n",
			f.BaselineCPUPerMessageMS, f.FanoutCPUPerMessageMS, f.Syncers, f.CPUPerWokenSyncUS)
	}
	fmt.Fprintf(&out, "wake after send response: %s\n", f.Wake)
	fmt.Fprintf(&out, "send latency:             %s\n", f.SendLatency)
	out.WriteString(f.commonLines(&b.errs))
	return e.finish(stdout, out.String(), f, f.Stopped)
}

// bigRoom is one run's room and what its phases measure.
type bigRoom struct {
	e                 *runEnv
	roomID            string
	owner             user
	syncers           []*bigRoomSyncer
	wait, settle      time.Duration
	metricsURL        string
	wake, sendLat     latencies
	errs              errorCounts
	delivered, missed atomic.Int64
}

type bigRoomSyncer struct {
	u     user
	since string
}

// bigRoomFilter is what a client like Element asks for: members lazy-loaded,
// so a 1,000-member room's first sync is not its whole member list.
const bigRoomFilter = `{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":10}}}`

func (b *bigRoom) firstSync(ctx context.Context, s *bigRoomSyncer) error {
	r := b.e.c.syncFiltered(ctx, s.u, "", bigRoomFilter, 0)
	var sr syncResponse
	if !r.ok() {
		return fmt.Errorf("%s's first /sync: %s", s.u.UserID, r)
	}
	if err := r.decode(&sr); err != nil {
		return err
	}
	s.since = sr.NextBatch
	return nil
}

// phase sends n messages one after another; with syncing, each goes out
// once every syncer has the one before and has been parked for settle.
// It returns the server's CPU seconds over the phase, -1 when unknown.
func (b *bigRoom) phase(ctx context.Context, name string, n int, syncing bool) (float64, error) {
	var seen []chan string // per syncer: markers seen
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	if syncing {
		seen = make([]chan string, len(b.syncers))
		for i, s := range b.syncers {
			seen[i] = make(chan string, n+2)
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.syncLoop(pctx, s, seen[i])
			}()
		}
		time.Sleep(b.settle) // let the first long-polls park
		// One message first, not counted: the syncers coming back online
		// (presence) and their first wake-ups are not a message's cost.
		b.sendAndAwait(ctx, name+".warmup", seen, false)
	}
	before, err := b.serverCPU(ctx)
	if err != nil {
		return -1, err
	}
	for k := 0; k < n && ctx.Err() == nil; k++ {
		b.sendAndAwait(ctx, fmt.Sprintf("%s.%d", name, k), seen, true)
	}
	after, err := b.serverCPU(ctx)
	if err != nil || before < 0 {
		return -1, err
	}
	return after - before, nil
}

// sendAndAwait sends one message and, when seen is not nil, waits until
// every syncer has it (or -wait passes), then lets them park again.
func (b *bigRoom) sendAndAwait(ctx context.Context, name string, seen []chan string, count bool) {
	marker := b.e.runID + "." + name
	content := map[string]any{"msgtype": "m.text", "body": "somaload big room " + marker, "somaload_marker": marker}
	r := b.e.c.send(ctx, b.owner, b.roomID, "somaload."+marker, content)
	if !r.ok() {
		b.errs.add(r.kind(), r.String())
		return
	}
	if count {
		b.sendLat.add(r.latency())
	}
	if seen == nil {
		return
	}
	deadline := time.After(b.wait)
	for i := range seen {
		if !b.await(ctx, seen[i], marker, r.Done, deadline, count) && count {
			b.missed.Add(1)
		}
	}
	time.Sleep(b.settle)
}

// await waits for marker on one syncer's channel (skipping older ones).
func (b *bigRoom) await(ctx context.Context, ch chan string, marker string, sent time.Time, deadline <-chan time.Time, count bool) bool {
	for {
		select {
		case m := <-ch:
			if m == marker {
				if count {
					b.delivered.Add(1)
					b.wake.add(time.Since(sent))
				}
				return true
			}
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// syncLoop long-polls /sync until ctx ends, passing on every marker seen.
func (b *bigRoom) syncLoop(ctx context.Context, s *bigRoomSyncer, seen chan<- string) {
	for ctx.Err() == nil {
		r := b.e.c.syncFiltered(ctx, s.u, s.since, bigRoomFilter, b.wait)
		var sr syncResponse
		if !r.ok() || r.decode(&sr) != nil {
			if ctx.Err() == nil {
				b.errs.add(r.kind(), r.String())
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		if sr.NextBatch != "" {
			s.since = sr.NextBatch
		}
		for _, ev := range sr.Rooms.Join[b.roomID].Timeline.Events {
			if m, ok := ev.Content["somaload_marker"].(string); ok {
				select {
				case seen <- m:
				default:
				}
			}
		}
	}
}

// serverCPU reads process_cpu_seconds_total (summed over its series) from
// the server's metrics; -1 without -metrics-url.
func (b *bigRoom) serverCPU(ctx context.Context) (float64, error) {
	if b.metricsURL == "" {
		return -1, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.metricsURL, nil)
	if err != nil {
		return -1, err
	}
	resp, err := b.e.c.http.Do(req)
	if err != nil {
		return -1, fmt.Errorf("reading %s: %w", b.metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, fmt.Errorf("reading %s: %s", b.metricsURL, resp.Status)
	}
	return parseProcessCPU(resp.Body)
}

// parseProcessCPU sums the process_cpu_seconds_total samples of a
// Prometheus text exposition.
func parseProcessCPU(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	total, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		name := line[:max(sp, 0)]
		if sp < 0 || !(name == "process_cpu_seconds_total" || strings.HasPrefix(name, "process_cpu_seconds_total{")) {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return -1, fmt.Errorf("process_cpu_seconds_total: %w", err)
		}
		total += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return -1, err
	}
	if !found {
		return -1, fmt.Errorf("the metrics have no process_cpu_seconds_total")
	}
	return total, nil
}
