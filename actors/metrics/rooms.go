package metrics

import (
	"cmp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RoomStats is the live view of one active room actor, for the admin API.
type RoomStats struct {
	RoomID      string    `json:"room_id"`
	ActivatedAt time.Time `json:"activated_at"`
	// MailboxDepth is the messages waiting for the actor now.
	MailboxDepth      int    `json:"mailbox_depth"`
	MessagesProcessed uint64 `json:"messages_processed"`
	EventsCommitted   uint64 `json:"events_committed"`
	// EventsLastMinute and EventsPerSecond are over the last minute (or
	// the activation's life, when shorter).
	EventsLastMinute uint64  `json:"events_last_minute"`
	EventsPerSecond  float64 `json:"events_per_second"`
	// MessageLatency is the time the actor spent per message, in seconds.
	MessageLatency Distribution `json:"message_latency"`
	// CommitLatency is the time per commit transaction, in seconds.
	CommitLatency Distribution `json:"commit_latency"`
	// BatchSize is commands per batch.
	BatchSize Distribution `json:"batch_size"`
	// StateResolution is in seconds; empty until the room resolves state.
	StateResolution Distribution `json:"state_resolution"`
	// Restarts after a panic in this activation, and the last panic.
	Restarts          uint64    `json:"restarts"`
	LastRestartReason string    `json:"last_restart_reason,omitempty"`
	LastRestartAt     time.Time `json:"last_restart_at,omitzero"`
	// The room's head as the actor last loaded or committed it.
	Epoch              int64 `json:"epoch"`
	Depth              int64 `json:"depth"`
	JoinedMembers      int   `json:"joined_members"`
	ForwardExtremities int   `json:"forward_extremities"`
	StateEvents        int   `json:"state_events"`
}

// RoomStats returns the live figures of every active room actor, hottest
// first (see hottest). It reads atomics: no actor is asked or blocked.
func (m *Actors) RoomStats() []RoomStats {
	now := m.now()
	rooms := m.hottest(m.liveRooms(), -1, now)
	out := make([]RoomStats, len(rooms))
	for i, a := range rooms {
		out[i] = a.stats(now)
	}
	return out
}

// Room returns the live figures of a room whose actor is active.
func (m *Actors) Room(roomID string) (RoomStats, bool) {
	var found *Activation
	for _, a := range m.liveRooms() {
		if a.id == roomID && newer(a, found) {
			found = a
		}
	}
	if found == nil {
		return RoomStats{}, false
	}
	return found.stats(m.now()), true
}

// newer reports whether a was activated after b (or b is nil). Two
// activations of a room may briefly coexist, one of them stopping; the
// newer is the one commands reach.
func newer(a, b *Activation) bool {
	return b == nil || a.activatedAt.Load() > b.activatedAt.Load()
}

// hottest orders rooms (one activation per room, the newer) by load,
// highest first, ties by room ID, and keeps at most limit (all when
// limit < 0). A room's load is the events it committed in the last minute
// plus the messages waiting for it now, so that a stalled room with a deep
// mailbox counts as hot too.
func (m *Actors) hottest(rooms []*Activation, limit int, now time.Time) []*Activation {
	byID := make(map[string]*Activation, len(rooms))
	for _, a := range rooms {
		if newer(a, byID[a.id]) {
			byID[a.id] = a
		}
	}
	type ranked struct {
		a    *Activation
		load uint64
	}
	all := make([]ranked, 0, len(byID))
	for _, a := range byID {
		all = append(all, ranked{a, a.recent.sum(now.Unix()) + uint64(a.MailboxDepth())})
	}
	slices.SortFunc(all, func(x, y ranked) int {
		if c := cmp.Compare(y.load, x.load); c != 0 {
			return c
		}
		return cmp.Compare(x.a.id, y.a.id)
	})
	if limit >= 0 && len(all) > limit {
		all = all[:limit]
	}
	out := make([]*Activation, len(all))
	for i, r := range all {
		out[i] = r.a
	}
	return out
}

// stats reads the activation's figures.
func (a *Activation) stats(now time.Time) RoomStats {
	s := RoomStats{
		RoomID:             a.id,
		MailboxDepth:       a.MailboxDepth(),
		MessagesProcessed:  a.processed.Load(),
		EventsCommitted:    a.events.Load(),
		EventsLastMinute:   a.recent.sum(now.Unix()),
		MessageLatency:     a.latency.snapshot().distribution(),
		CommitLatency:      a.commit.snapshot().distribution(),
		BatchSize:          a.batch.snapshot().distribution(),
		StateResolution:    a.stateRes.snapshot().distribution(),
		Restarts:           a.restarts.Load(),
		Epoch:              a.epoch.Load(),
		Depth:              a.depth.Load(),
		JoinedMembers:      int(a.joined.Load()),
		ForwardExtremities: int(a.extremities.Load()),
		StateEvents:        int(a.stateEvents.Load()),
	}
	if at := a.activatedAt.Load(); at != 0 {
		s.ActivatedAt = time.Unix(0, at)
	}
	if f := a.lastFailure.Load(); f != nil {
		s.LastRestartReason, s.LastRestartAt = f.reason, f.at
	}
	s.EventsPerSecond = a.perSecond(s.EventsLastMinute, now)
	return s
}

// perSecond turns the events of the last minute into a rate: over the
// minute, or over the activation's life when it is younger.
func (a *Activation) perSecond(recent uint64, now time.Time) float64 {
	span := float64(windowSeconds)
	if at := a.activatedAt.Load(); at != 0 {
		span = min(now.Sub(time.Unix(0, at)).Seconds(), span)
	}
	return float64(recent) / max(span, 1)
}

// roomDescs are the per-room series, labelled room_id.
type roomDescs struct {
	exported, mailbox, processed, latency, events, eventsPerSec, batch, commit, stateRes,
	restarts, joined, extremities, stateEvents, activatedAt *prometheus.Desc
}

func newRoomDescs() roomDescs {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("soma_room_"+name, help, []string{"room_id"}, nil)
	}
	return roomDescs{
		exported:     prometheus.NewDesc("soma_room_series_rooms", "Rooms exported with a room_id label at this scrape (at most metrics.max_room_series, the busiest).", nil, nil),
		mailbox:      d("mailbox_depth", "Messages waiting for the room's actor."),
		processed:    d("messages_processed_total", "Messages the room's actor handled in this activation."),
		latency:      d("message_duration_seconds", "Time the room's actor spent per message in this activation."),
		events:       d("events_committed_total", "Events the room's actor committed in this activation."),
		eventsPerSec: d("events_per_second", "Events committed per second over the last minute."),
		batch:        d("batch_size", "Commands per batch (one transaction) in this activation."),
		commit:       d("commit_duration_seconds", "Time per commit transaction in this activation."),
		stateRes:     d("state_resolution_duration_seconds", "Time per state resolution in this activation."),
		restarts:     d("restarts_total", "Restarts after a panic in this activation."),
		joined:       d("joined_members", "Joined members of the room."),
		extremities:  d("forward_extremities", "Forward extremities of the room."),
		stateEvents:  d("state_events", "Events in the room's current state."),
		activatedAt:  d("activated_timestamp_seconds", "When the room's actor was activated (Unix time)."),
	}
}

func (d roomDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.exported, d.mailbox, d.processed, d.latency, d.events, d.eventsPerSec,
		d.batch, d.commit, d.stateRes, d.restarts, d.joined, d.extremities, d.stateEvents, d.activatedAt} {
		ch <- desc
	}
}

// collectRooms exports the busiest of the live rooms, up to the cap.
func (m *Actors) collectRooms(ch chan<- prometheus.Metric, rooms []*Activation) {
	d := m.room
	now := m.now()
	top := m.hottest(rooms, m.maxRoomSeries, now)
	ch <- prometheus.MustNewConstMetric(d.exported, prometheus.GaugeValue, float64(len(top)))
	for _, a := range top {
		id := a.id
		gauge := func(desc *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, id)
		}
		counter := func(desc *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), id)
		}
		recent := a.recent.sum(now.Unix())
		gauge(d.mailbox, float64(a.MailboxDepth()))
		counter(d.processed, a.processed.Load())
		ch <- a.latency.snapshot().constHistogram(d.latency, id)
		counter(d.events, a.events.Load())
		gauge(d.eventsPerSec, a.perSecond(recent, now))
		ch <- a.batch.snapshot().constHistogram(d.batch, id)
		ch <- a.commit.snapshot().constHistogram(d.commit, id)
		if sr := a.stateRes.snapshot(); sr.count > 0 {
			ch <- sr.constHistogram(d.stateRes, id)
		}
		counter(d.restarts, a.restarts.Load())
		gauge(d.joined, float64(a.joined.Load()))
		gauge(d.extremities, float64(a.extremities.Load()))
		gauge(d.stateEvents, float64(a.stateEvents.Load()))
		gauge(d.activatedAt, float64(a.activatedAt.Load())/1e9)
	}
}
