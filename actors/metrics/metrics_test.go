package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// quietSystem is an actor system that logs nothing.
func quietSystem() *actor.ActorSystem {
	l := slog.New(slog.NewTextHandler(io.Discard, nil))
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return l }))
}

// clock is a settable time source.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// scrape gathers m as Prometheus would and returns its families by name.
func scrape(t *testing.T, m *Actors) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// roomSeries returns, for a per-room metric, the value of each room.
func roomSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		out[label(m, "room_id")] = v
	}
	return out
}

// kindValue returns a per-kind metric's value for kind.
func kindValue(fams map[string]*dto.MetricFamily, name, kind string) float64 {
	for _, m := range fams[name].GetMetric() {
		if label(m, "kind") == kind {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return math.NaN()
}

// activate makes a room activation live without an actor (as its first
// Started would).
func activate(m *Actors, roomID string) *Activation {
	a := m.NewActivation(KindRoom, roomID)
	a.started()
	return a
}

func TestRoomSeriesAreTheHottestUpToTheCap(t *testing.T) {
	c := newClock()
	m := New(Options{MaxRoomSeries: 3, Now: c.now})
	acts := map[string]*Activation{}
	for i, events := range []int{5, 50, 1, 20, 0, 30} {
		id := fmt.Sprintf("!r%d:x", i)
		acts[id] = activate(m, id)
		if events > 0 {
			acts[id].ObserveCommit(events, time.Millisecond)
		}
	}
	fams := scrape(t, m)
	got := roomSeries(t, fams, "soma_room_events_committed_total")
	want := map[string]float64{"!r1:x": 50, "!r5:x": 30, "!r3:x": 20}
	if !equalMaps(got, want) {
		t.Fatalf("room series = %v, want the three hottest %v", got, want)
	}
	if n := fams["soma_room_series_rooms"].GetMetric()[0].GetGauge().GetValue(); n != 3 {
		t.Fatalf("soma_room_series_rooms = %v, want 3", n)
	}
	if v := kindValue(fams, "soma_actors_active", KindRoom); v != 6 {
		t.Fatalf("active rooms = %v, want 6 (the cap limits series, not the totals)", v)
	}
	if v := kindValue(fams, "soma_actor_events_committed_total", KindRoom); v != 106 {
		t.Fatalf("events committed in total = %v, want 106", v)
	}
	// Every per-room metric carries the same rooms.
	for _, name := range []string{"soma_room_mailbox_depth", "soma_room_message_duration_seconds", "soma_room_commit_duration_seconds", "soma_room_batch_size", "soma_room_events_per_second", "soma_room_joined_members"} {
		if got := roomSeries(t, fams, name); len(got) != 3 {
			t.Errorf("%s: %v, want the same three rooms", name, got)
		}
	}

	// A minute later the old bursts no longer count: the room busy now is
	// the hottest, however few events it has.
	c.advance(61 * time.Second)
	acts["!r2:x"].ObserveCommit(2, time.Millisecond)
	got = roomSeries(t, scrape(t, m), "soma_room_events_per_second")
	if len(got) != 3 || got["!r2:x"] != 2.0/60 {
		t.Fatalf("events/s after a minute = %v, want !r2:x first at 2/60", got)
	}
	stats := m.RoomStats()
	if stats[0].RoomID != "!r2:x" || stats[0].EventsLastMinute != 2 || stats[0].EventsCommitted != 3 {
		t.Fatalf("hottest room = %+v, want !r2:x with 2 events in the last minute, 3 in all", stats[0])
	}
}

func TestRoomSeriesGoAwayWhenTheActivationStops(t *testing.T) {
	c := newClock()
	m := New(Options{MaxRoomSeries: 2, Now: c.now})
	a := activate(m, "!a:x")
	b := activate(m, "!b:x")
	activate(m, "!c:x")
	a.ObserveCommit(10, time.Millisecond)
	b.ObserveCommit(5, time.Millisecond)
	if got := roomSeries(t, scrape(t, m), "soma_room_events_committed_total"); !equalMaps(got, map[string]float64{"!a:x": 10, "!b:x": 5}) {
		t.Fatalf("before: %v", got)
	}
	a.stopped()
	fams := scrape(t, m)
	if got := roomSeries(t, fams, "soma_room_events_committed_total"); !equalMaps(got, map[string]float64{"!b:x": 5, "!c:x": 0}) {
		t.Fatalf("after !a:x passivated: %v, want !b:x and !c:x", got)
	}
	if v := kindValue(fams, "soma_actor_passivations_total", KindRoom); v != 1 {
		t.Fatalf("passivations = %v, want 1", v)
	}
	if _, ok := m.Room("!a:x"); ok {
		t.Fatal("a passivated room still has live figures")
	}
}

func TestNoRoomSeriesWhenCapIsZero(t *testing.T) {
	m := New(Options{MaxRoomSeries: 0})
	activate(m, "!a:x").ObserveCommit(3, time.Millisecond)
	fams := scrape(t, m)
	if got := roomSeries(t, fams, "soma_room_events_committed_total"); len(got) != 0 {
		t.Fatalf("room series with a cap of 0: %v", got)
	}
	if v := kindValue(fams, "soma_actor_events_committed_total", KindRoom); v != 3 {
		t.Fatalf("totals must still count: %v", v)
	}
}

// blocker is an actor that records a commit per message and waits for
// release on each; "panic" makes it panic.
type blocker struct {
	release chan struct{}
	stats   *Activation
}

func (b *blocker) Measure(a *Activation) { b.stats = a }

func (b *blocker) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case string:
		if msg == "panic" {
			panic("boom: injected")
		}
		<-b.release
		b.stats.ObserveBatch(1)
		b.stats.ObserveCommit(1, time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMailboxDepthRisesWhileBlockedAndDrains(t *testing.T) {
	system := quietSystem()
	defer system.Shutdown()
	m := New(Options{MaxRoomSeries: 10})
	release := make(chan struct{})
	a := m.NewActivation(KindRoom, "!busy:x")
	pid := system.Root.Spawn(a.Props(func() actor.Actor { return &blocker{release: release} }))

	const sent = 20
	for range sent {
		system.Root.Send(pid, "work")
	}
	// The first message is being handled (blocked); the rest wait.
	waitFor(t, "the mailbox holds the rest", func() bool { return a.MailboxDepth() == sent-1 })
	fams := scrape(t, m)
	if v := kindValue(fams, "soma_actor_mailbox_depth", KindRoom); v != sent-1 {
		t.Fatalf("kind mailbox depth = %v, want %d", v, sent-1)
	}
	if got := roomSeries(t, fams, "soma_room_mailbox_depth"); got["!busy:x"] != sent-1 {
		t.Fatalf("room mailbox depth = %v, want %d", got, sent-1)
	}
	if s, _ := m.Room("!busy:x"); s.MailboxDepth != sent-1 || s.MessagesProcessed != 0 {
		t.Fatalf("room stats while blocked: %+v", s)
	}

	close(release)
	// The middleware counts a message after the actor handled it, one
	// counter after the other: wait for the last of them, not just the first.
	waitFor(t, "every message is processed and counted", func() bool {
		s, _ := m.Room("!busy:x")
		return s.MessagesProcessed == sent && s.MessageLatency.Count == sent &&
			kindValue(scrape(t, m), "soma_actor_messages_processed_total", KindRoom) == sent
	})
	s, _ := m.Room("!busy:x")
	if s.MailboxDepth != 0 || s.EventsCommitted != sent || s.MessageLatency.Count != sent || s.BatchSize.Count != sent {
		t.Fatalf("room stats after draining: %+v", s)
	}
	// The first message waited for the release: its latency shows.
	if s.MessageLatency.P99 <= 0 {
		t.Fatalf("latency percentiles: %+v", s.MessageLatency)
	}
	fams = scrape(t, m)
	if v := kindValue(fams, "soma_actor_mailbox_depth", KindRoom); v != 0 {
		t.Fatalf("kind mailbox depth after draining = %v", v)
	}
	if v := kindValue(fams, "soma_actor_messages_processed_total", KindRoom); v != sent {
		t.Fatalf("messages processed = %v, want %d", v, sent)
	}
}

func TestRestartIsCountedWithItsReasonAndPassivationEndsTheSeries(t *testing.T) {
	system := quietSystem()
	defer system.Shutdown()
	m := New(Options{MaxRoomSeries: 10})
	m.WatchDeadLetters(system)
	release := make(chan struct{})
	close(release)
	a := m.NewActivation(KindRoom, "!crash:x")
	pid := system.Root.Spawn(a.Props(func() actor.Actor { return &blocker{release: release} }))
	system.Root.Send(pid, "work")
	system.Root.Send(pid, "panic")
	system.Root.Send(pid, "work")
	waitFor(t, "the message after the panic is handled", func() bool { s, _ := m.Room("!crash:x"); return s.EventsCommitted == 2 })

	s, _ := m.Room("!crash:x")
	if s.Restarts != 1 || !strings.Contains(s.LastRestartReason, "boom: injected") || s.LastRestartAt.IsZero() {
		t.Fatalf("after a panic: restarts %d, reason %q at %v", s.Restarts, s.LastRestartReason, s.LastRestartAt)
	}
	fams := scrape(t, m)
	if v := kindValue(fams, "soma_actor_restarts_total", KindRoom); v != 1 {
		t.Fatalf("restarts = %v, want 1", v)
	}
	if v := kindValue(fams, "soma_actor_activations_total", KindRoom); v != 1 {
		t.Fatalf("activations = %v, want 1 (a restart is not an activation)", v)
	}
	if got := roomSeries(t, fams, "soma_room_restarts_total"); got["!crash:x"] != 1 {
		t.Fatalf("room restarts = %v", got)
	}

	if err := system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stopped actor's series are gone", func() bool { return m.Active(KindRoom) == 0 })
	fams = scrape(t, m)
	if got := roomSeries(t, fams, "soma_room_events_committed_total"); len(got) != 0 {
		t.Fatalf("series of a stopped room: %v", got)
	}
	if v := kindValue(fams, "soma_actor_passivations_total", KindRoom); v != 1 {
		t.Fatalf("passivations = %v, want 1", v)
	}

	system.Root.Send(pid, "work") // to an actor that is gone
	waitFor(t, "a dead letter is counted", func() bool { return m.DeadLetters() == 1 })
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHistogram([]float64{1, 2, 4})
	for _, v := range []float64{0.5, 1.5, 1.5, 3, 10} {
		h.observe(v)
	}
	s := h.snapshot()
	if s.count != 5 || s.sum != 16.5 {
		t.Fatalf("count %d sum %v", s.count, s.sum)
	}
	for _, tc := range []struct{ q, want float64 }{
		{0.2, 1},    // rank 1: the top of the first bucket
		{0.5, 1.75}, // rank 2.5: three quarters into (1, 2]
		{0.99, 4},   // in +Inf: the highest finite bound
	} {
		if got := s.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if d := newHistogram([]float64{1}).snapshot().distribution(); d != (Distribution{}) {
		t.Errorf("empty distribution: %+v", d)
	}
}

func TestWindowForgetsWhatIsOlderThanAMinute(t *testing.T) {
	var w window
	w.add(100, 3)
	w.add(130, 4)
	w.add(159, 5)
	if got := w.sum(159); got != 12 {
		t.Fatalf("sum at 159 = %d, want 12", got)
	}
	if got := w.sum(160); got != 9 {
		t.Fatalf("sum at 160 = %d, want 9 (second 100 is out)", got)
	}
	w.add(160, 1) // reuses the slot of second 100
	if got := w.sum(189); got != 10 {
		t.Fatalf("sum at 189 = %d, want 10", got)
	}
	if got := w.sum(190); got != 6 {
		t.Fatalf("sum at 190 = %d, want 6 (second 130 is out)", got)
	}
}

func equalMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v, ok := b[k]; !ok || v != a[k] {
			return false
		}
	}
	return true
}

// BenchmarkScrape10000Rooms is one scrape with 10,000 active rooms (the
// cap at its default): walking them, picking the top 100, encoding.
func BenchmarkScrape10000Rooms(b *testing.B) {
	m := New(Options{MaxRoomSeries: DefaultMaxRoomSeries})
	for i := range 10000 {
		a := m.NewActivation(KindRoom, fmt.Sprintf("!room%d:x", i))
		a.started()
		a.ObserveBatch(i%7 + 1)
		a.ObserveCommit(i%13, time.Millisecond)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	b.ResetTimer()
	for range b.N {
		fams, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		if len(fams) == 0 {
			b.Fatal("nothing gathered")
		}
	}
}
