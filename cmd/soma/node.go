package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/httpapi"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/backends"
	"github.com/soma-chat/soma/persistence/mediafiles"
	"github.com/soma-chat/soma/rooms"
)

// node is a running Soma server.
type node struct {
	log    zerolog.Logger
	store  persistence.Store
	system *actor.ActorSystem
	http   *http.Server
	addr   net.Addr
	// metrics serves /metrics; nil when metrics.listen is "".
	metrics     *http.Server
	metricsAddr net.Addr
	// fed is the federation listener and client; nil when federation is off.
	fed *federationNode
	// senders are fed's senders, for the room actors, which may commit
	// (inbound federation) before startFederation has returned.
	senders atomic.Pointer[federation.Senders]
	failed  chan error
	// cancelRequests ends long-polling requests at shutdown.
	cancelRequests context.CancelFunc
	// pusher sends push notifications; nil when push.enabled is off.
	pusher *actors.Pusher
}

func newLogger(c config.LogConfig, w io.Writer) zerolog.Logger {
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// startNode opens storage, starts the actor system and the listener.
func startNode(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*node, error) {
	routeLogrusToZerolog(log)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	key, generated, err := federation.LoadOrGenerateSigningKey(cfg.SigningKeyPath)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if generated {
		log.Info().Str("path", cfg.SigningKeyPath).Str("key_id", string(key.KeyID)).Msg("generated a new signing key")
	}
	store, err := backends.Open(ctx, backends.Config{
		Backend:      cfg.Database.Backend,
		SQLitePath:   cfg.Database.SQLitePath,
		SQLiteDriver: cfg.Database.SQLiteDriver,
		PostgresDSN:  cfg.Database.PostgresDSN,
		MaxOpenConns: cfg.Database.MaxOpenConns,
	})
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	n := &node{log: log, store: store, failed: make(chan error, 1)}
	mediaFiles, err := mediafiles.Open(cfg.Media.Path)
	if err != nil {
		n.closeStorage()
		return nil, fmt.Errorf("media.path: %w", err)
	}
	n.system = actors.NewSystem(log)
	actorMetrics := metrics.New(metrics.Options{MaxRoomSeries: cfg.Metrics.MaxRoomSeries})
	actorMetrics.WatchDeadLetters(n.system)
	notifier := actors.NewSyncNotifier(n.system, actorMetrics)
	var router *actors.LocalRoomRouter
	deps := &rooms.Deps{
		Store:  store,
		Signer: &rooms.Signer{ServerName: spec.ServerName(cfg.ServerName), KeyID: key.KeyID, Key: key.Private},
		// The pusher hears of commits as the sync notifier does; it is set
		// before the listener starts, so before any room commits.
		Publish: func(msg *messages.RoomAdvanced) {
			notifier.Publish(msg)
			if n.pusher != nil {
				n.pusher.Publish(msg)
			}
		},
		WakeSenders:  func(destinations ...string) { n.senders.Load().Wake(destinations...) },
		Passivate:    func(roomID string, pid *actor.PID) bool { return router.Passivate(roomID, pid) },
		IdleTimeout:  cfg.Rooms.IdleTimeout.Duration,
		StoreTimeout: cfg.Rooms.RequestTimeout.Duration,
		Log:          log,
		Now:          time.Now,
	}
	router = actors.NewLocalRoomRouter(n.system, func(roomID string) actor.Producer { return rooms.NewActor(roomID, deps) })
	router.MaxQueued = cfg.Rooms.MaxQueued
	router.Metrics = actorMetrics
	httpMetrics := httpapi.NewHTTPMetrics()

	actorsUp := httpapi.ReadinessCheck{Name: "actors", Check: func(context.Context) error {
		if n.system.IsStopped() {
			return errors.New("the actor system is shut down")
		}
		return nil
	}}
	base, cancelRequests := context.WithCancel(context.Background())
	n.cancelRequests = cancelRequests
	typing := actors.NewTyping()
	var presence httpapi.PresenceTracker // nil: presence disabled
	var presenceState *actors.Presence
	edus := federation.EDUReceivers{
		Typing: typing, Members: store, Users: store, Receipts: store, DeviceLists: store, ToDevice: store, Publish: notifier,
	}
	if cfg.Presence.Enabled {
		presenceState = actors.NewPresence()
		presence, edus.Presence = presenceState, presenceState
	}
	if n.fed, err = startFederation(cfg, key, store, router, n.system, actorMetrics, &n.senders, edus, mediaFiles, base, log, n.failed); err != nil {
		n.closeStorage()
		return nil, err
	}
	n.fed.sendPresence(base, presenceState, log.With().Str("component", "federation_presence").Logger())
	api := httpapi.NewServer(httpapi.Options{
		ServerName:          cfg.ServerName,
		RegistrationEnabled: cfg.Registration.Enabled,
		PublicBaseURL:       cfg.ClientAPI.PublicBaseURL,
		RequestTimeout:      cfg.Rooms.RequestTimeout.Duration,
		Metrics:             httpMetrics,
		TURN:                turnOptions(cfg.TURN),
		DefaultRoomVersion:  cfg.Rooms.DefaultVersion,
		RateLimits: httpapi.RateLimits{
			Enabled: cfg.RateLimits.Enabled, TrustForwardedFor: cfg.RateLimits.TrustForwardedFor,
			PerUser: httpapi.RateLimit(cfg.RateLimits.PerUser), PerIP: httpapi.RateLimit(cfg.RateLimits.PerIP),
			Login: httpapi.RateLimit(cfg.RateLimits.Login),
		},
		RegistrationSharedSecret: cfg.Registration.SharedSecret,
		ReadinessChecks:          []httpapi.ReadinessCheck{actorsUp},
		RoomStats:                actorMetrics,
		RoomInspector:            router,
		FaultInjection:           cfg.Debug.FaultInjection,
		Publisher:                notifier,
		Typing:                   typing,
		Presence:                 presence,
		Media:                    httpapi.MediaOptions{Files: mediaFiles, MaxUploadSize: cfg.Media.MaxUploadSize},
		RemoteProfiles:           n.fed.remoteProfiles(),
		RemoteMedia:              n.fed.remoteMedia(),
		RemoteMemberships:        n.fed.remoteMemberships(),
		RemoteKeys:               n.fed.remoteKeys(),
		RemoteDirectory:          n.fed.remoteDirectory(),
		RemoteHistory:            n.fed.remoteHistory(),
		EDUs:                     n.fed.outboundEDUs(),
		WellKnownServer:          cfg.Federation.WellKnownServer,
	}, store, router, notifier, log)

	if cfg.Push.Enabled {
		start, err := store.MaxStreamPos(ctx)
		if err != nil {
			n.closeStorage()
			return nil, fmt.Errorf("database: %w", err)
		}
		n.pusher = actors.NewPusher(n.system, actors.PusherOptions{
			Planner: api, Store: store, Start: start, Log: log.With().Str("component", "pusher").Logger(),
		}, actorMetrics)
	}

	if cfg.Metrics.Listen != "" {
		collected := []prometheus.Collector{actorMetrics, httpMetrics, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "soma_sync_waiters", Help: "Long-polling /sync requests waiting for something new.",
		}, func() float64 { return float64(notifier.Waiters()) })}
		if s, ok := store.(poolStats); ok {
			collected = append(collected, newDBStatsCollector(s.Stats, cfg.Database.Backend))
		}
		reg := newMetricsRegistry(cfg.ServerName, collected...)
		if n.metrics, n.metricsAddr, err = serveMetrics(cfg.Metrics.Listen, reg, cfg.Metrics.PProf, log, n.failed); err != nil {
			n.fed.shutdown(context.Background(), log)
			n.closeStorage()
			return nil, err
		}
	}

	ln, err := net.Listen("tcp", cfg.ClientAPI.Listen)
	if err != nil {
		n.stopMetrics()
		n.fed.shutdown(context.Background(), log)
		n.closeStorage()
		return nil, fmt.Errorf("client API listener: %w", err)
	}
	n.addr = ln.Addr()
	n.http = &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	go func() {
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.failed <- err
		}
	}()
	if cfg.Registration.Enabled {
		ev := log.Warn()
		if !cfg.ListenIsLoopback() {
			ev = log.Error()
		}
		ev.Str("listen", n.addr.String()).Msg("registration is open: anyone who can reach this listener can create an account (set registration.enabled: false to close it)")
	}
	if cfg.Registration.SharedSecret != "" {
		log.Info().Msg("shared-secret registration is on: whoever knows registration.shared_secret can create admins")
	}
	if cfg.Debug.FaultInjection {
		log.Warn().Msg("debug.fault_injection is on: admins can make room actors panic on purpose")
	}
	ready := log.Info().Str("server_name", cfg.ServerName).Str("listen", n.addr.String()).
		Str("database", cfg.Database.Backend)
	if n.metricsAddr != nil {
		ready = ready.Str("metrics_listen", n.metricsAddr.String())
	}
	if n.fed != nil {
		ready = ready.Str("federation_listen", n.fed.addr.String())
	}
	ready.Msg("soma is ready")
	return n, nil
}

// shutdown stops accepting requests, lets in-flight ones finish, then stops
// the actors and closes storage.
func (n *node) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.cancelRequests() // a waiting /sync answers at once; a send in flight still commits
	if err := n.http.Shutdown(ctx); err != nil {
		n.log.Warn().Err(err).Msg("HTTP shutdown")
	}
	n.fed.shutdown(ctx, n.log)
	n.stopMetrics()
	if n.pusher != nil {
		n.pusher.Stop() // pushes still being retried are dropped
	}
	n.system.Shutdown()
	n.closeStorage()
}

// stopMetrics closes the metrics listener: a scrape has nothing to wait for.
func (n *node) stopMetrics() {
	if n.metrics != nil {
		_ = n.metrics.Close()
	}
}

func (n *node) closeStorage() {
	if err := n.store.Close(); err != nil {
		n.log.Warn().Err(err).Msg("closing storage")
	}
}

// turnOptions is what GET /voip/turnServer hands out, from the turn section.
func turnOptions(t config.TURNConfig) httpapi.TURNOptions {
	return httpapi.TURNOptions{
		URIs: t.URIs, SharedSecret: t.SharedSecret, UserLifetime: t.UserLifetime.Duration,
		Username: t.Username, Password: t.Password,
	}
}
