// Package metrics measures Soma's actors, for Prometheus and for the admin
// API: per-kind totals (activations, passivations, restarts, mailbox depth,
// messages and their latency, batches, commits, dead letters) and the live
// figures of every active room actor, of which the busiest are exported
// with a room_id label.
//
// Each activation owns an Activation: cheap atomic counters written by the
// actor's own goroutine (a receiver middleware times every message; the
// room actor adds its batches and commits). A scrape walks the live
// activations and reads them without blocking any actor, so a room's
// series exist exactly while it is active and among the MaxRoomSeries
// busiest: nothing has to be deleted when it passivates, and the number of
// series is bounded whatever the number of rooms.
//
// protoactor's own OpenTelemetry metrics are not used: they export no
// mailbox length and have no per-actor labels.
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
)

// Actor kinds, the value of the "kind" label.
const (
	KindRoom         = "room"
	KindSyncNotifier = "sync_notifier"
	KindPusher       = "pusher"
	// KindDestination is a federation sender: one per remote server.
	KindDestination = "destination"
)

// DefaultMaxRoomSeries is the default cap on rooms exported per room.
const DefaultMaxRoomSeries = 100

// Options configures an Actors.
type Options struct {
	// MaxRoomSeries caps how many rooms are exported with a room_id label
	// (the busiest first); 0 exports none.
	MaxRoomSeries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Actors measures the actors of one node. It is a prometheus.Collector;
// register it (with a "node" label) to export its figures.
type Actors struct {
	maxRoomSeries int
	now           func() time.Time

	mu    sync.Mutex
	kinds map[string]*kind

	deadLetters atomic.Uint64

	activations, passivations, restarts, processed, events *prometheus.CounterVec
	msgDuration, batchSize, commitDuration, stateRes       *prometheus.HistogramVec

	activeDesc, mailboxDesc, deadLettersDesc *prometheus.Desc
	room                                     roomDescs
}

// kind is one actor kind: its Prometheus children, resolved once so that
// the per-message cost is a few atomic adds, and its live activations.
type kind struct {
	name                                           string
	activations, passivations, restarts, processed prometheus.Counter
	msgDuration                                    prometheus.Observer
	live                                           map[*Activation]struct{} // guarded by Actors.mu

	// The figures of kinds that commit (rooms), resolved on first use so
	// that other kinds export no empty series for them.
	writesOnce sync.Once
	writes     writeFigures
	resolve    func() writeFigures
}

type writeFigures struct {
	events                              prometheus.Counter
	batchSize, commitDuration, stateRes prometheus.Observer
}

func (k *kind) writing() *writeFigures {
	k.writesOnce.Do(func() { k.writes = k.resolve() })
	return &k.writes
}

// New returns the measurements of a node's actors.
func New(opts Options) *Actors {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "soma", Subsystem: "actor", Name: name, Help: help}, []string{"kind"})
	}
	hist := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "soma", Subsystem: "actor", Name: name, Help: help, Buckets: buckets}, []string{"kind"})
	}
	m := &Actors{
		maxRoomSeries: max(opts.MaxRoomSeries, 0),
		now:           opts.Now,
		kinds:         map[string]*kind{},

		activations:    counter("activations_total", "Actors activated (spawned), by kind."),
		passivations:   counter("passivations_total", "Activations that ended: idle passivation, or a stop after repeated failures."),
		restarts:       counter("restarts_total", "Actors restarted by their supervisor after a panic; the last reason is in the admin API."),
		processed:      counter("messages_processed_total", "Messages actors handled (lifecycle messages excluded)."),
		events:         counter("events_committed_total", "Events room actors committed to storage."),
		msgDuration:    hist("message_duration_seconds", "Time an actor spent handling one message (a room's batch flush includes its commit).", durationBuckets),
		batchSize:      hist("batch_size", "Commands a room actor gathered into one batch (one transaction).", batchBuckets),
		commitDuration: hist("commit_duration_seconds", "Time a room actor's commit transaction took.", durationBuckets),
		stateRes:       hist("state_resolution_duration_seconds", "Time state resolution took (rooms whose servers forked).", durationBuckets),

		activeDesc:      prometheus.NewDesc("soma_actors_active", "Live activations, by kind.", []string{"kind"}, nil),
		mailboxDesc:     prometheus.NewDesc("soma_actor_mailbox_depth", "Messages waiting in the mailboxes of live actors, by kind.", []string{"kind"}, nil),
		deadLettersDesc: prometheus.NewDesc("soma_actor_dead_letters_total", "Messages sent to an actor that no longer exists (a reply after its requester gave up, a passivated actor).", nil, nil),
		room:            newRoomDescs(),
	}
	m.kind(KindRoom).writing() // rooms' series exist from the start
	m.kind(KindSyncNotifier)
	return m
}

// kind returns the kind's measurements, creating them on first use.
func (m *Actors) kind(name string) *kind {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.kinds[name]; k != nil {
		return k
	}
	k := &kind{
		name:         name,
		activations:  m.activations.WithLabelValues(name),
		passivations: m.passivations.WithLabelValues(name),
		restarts:     m.restarts.WithLabelValues(name),
		processed:    m.processed.WithLabelValues(name),
		msgDuration:  m.msgDuration.WithLabelValues(name),
		live:         map[*Activation]struct{}{},
		resolve: func() writeFigures {
			return writeFigures{
				events:         m.events.WithLabelValues(name),
				batchSize:      m.batchSize.WithLabelValues(name),
				commitDuration: m.commitDuration.WithLabelValues(name),
				stateRes:       m.stateRes.WithLabelValues(name),
			}
		},
	}
	m.kinds[name] = k
	return k
}

// WatchDeadLetters counts the system's dead letters until it shuts down.
func (m *Actors) WatchDeadLetters(system *actor.ActorSystem) {
	system.EventStream.Subscribe(func(evt any) {
		if _, ok := evt.(*actor.DeadLetterEvent); ok {
			m.deadLetters.Add(1)
		}
	})
}

// DeadLetters is how many dead letters WatchDeadLetters has counted.
func (m *Actors) DeadLetters() uint64 { return m.deadLetters.Load() }

func (m *Actors) vectors() []prometheus.Collector {
	return []prometheus.Collector{m.activations, m.passivations, m.restarts, m.processed, m.events,
		m.msgDuration, m.batchSize, m.commitDuration, m.stateRes}
}

// Describe implements prometheus.Collector.
func (m *Actors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.vectors() {
		c.Describe(ch)
	}
	ch <- m.activeDesc
	ch <- m.mailboxDesc
	ch <- m.deadLettersDesc
	m.room.describe(ch)
}

// Collect implements prometheus.Collector. It reads the live activations'
// atomics: no actor is asked or blocked.
func (m *Actors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.vectors() {
		c.Collect(ch)
	}
	type kindFigures struct {
		name           string
		active, queued int
	}
	var figures []kindFigures
	var rooms []*Activation
	m.mu.Lock()
	for _, k := range m.kinds {
		f := kindFigures{name: k.name, active: len(k.live)}
		for a := range k.live {
			f.queued += a.MailboxDepth()
			if k.name == KindRoom {
				rooms = append(rooms, a)
			}
		}
		figures = append(figures, f)
	}
	m.mu.Unlock()
	for _, f := range figures {
		ch <- prometheus.MustNewConstMetric(m.activeDesc, prometheus.GaugeValue, float64(f.active), f.name)
		ch <- prometheus.MustNewConstMetric(m.mailboxDesc, prometheus.GaugeValue, float64(f.queued), f.name)
	}
	ch <- prometheus.MustNewConstMetric(m.deadLettersDesc, prometheus.CounterValue, float64(m.deadLetters.Load()))
	m.collectRooms(ch, rooms)
}

// activated and deactivated keep the live sets.
func (m *Actors) activated(a *Activation) {
	m.mu.Lock()
	a.kind.live[a] = struct{}{}
	m.mu.Unlock()
}

func (m *Actors) deactivated(a *Activation) {
	m.mu.Lock()
	delete(a.kind.live, a)
	m.mu.Unlock()
}

// liveRooms returns the live room activations.
func (m *Actors) liveRooms() []*Activation {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.kinds[KindRoom]
	out := make([]*Activation, 0, len(k.live))
	for a := range k.live {
		out = append(out, a)
	}
	return out
}

// Active is how many activations of a kind are live.
func (m *Actors) Active(kindName string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.kinds[kindName]; k != nil {
		return len(k.live)
	}
	return 0
}
