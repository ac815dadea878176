package main

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/config"
)

// newMetricsRegistry gathers what /metrics serves — the given collectors
// (actors, client API, database pool, sync waiters), the Go runtime and
// the process — every series labelled node="<node>".
func newMetricsRegistry(node string, cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	labelled := prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg)
	labelled.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labelled.MustRegister(cs...)
	return reg
}

// serveMetrics serves reg on listen at /metrics until the returned server
// is closed; failures of the listener after start-up go to failed.
func serveMetrics(listen string, reg *prometheus.Registry, pprof bool, log zerolog.Logger, failed chan<- error) (*http.Server, net.Addr, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listener: %w", err)
	}
	if !config.IsLoopback(listen) {
		log.Warn().Str("listen", ln.Addr().String()).Msg("metrics are served beyond loopback: whoever reaches this listener sees room IDs and load (set metrics.listen to a loopback address or \"\")")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})))
	if pprof {
		mux.HandleFunc("GET /debug/pprof/", httppprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", httppprof.Trace)
		log.Warn().Str("listen", ln.Addr().String()).Msg("the Go profiler is served at /debug/pprof/ (metrics.pprof)")
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case failed <- fmt.Errorf("metrics listener: %w", err):
			default:
			}
		}
	}()
	return srv, ln.Addr(), nil
}

// poolStats is a store that reports its connection pool (sqlstore.Store).
type poolStats interface{ Stats() sql.DBStats }

// dbStatsCollector exports a database pool's statistics under the names
// client_golang's collectors.NewDBStatsCollector uses (go_sql_*), so that
// the usual dashboards read them; it takes the statistics from the store
// rather than the *sql.DB the store keeps to itself.
type dbStatsCollector struct {
	stats                                          func() sql.DBStats
	maxOpen, open, inUse, idle                     *prometheus.Desc
	waitCount, waitDuration                        *prometheus.Desc
	maxIdleClosed, maxIdleTimeClosed, lifetimeDone *prometheus.Desc
}

func newDBStatsCollector(stats func() sql.DBStats, dbName string) *dbStatsCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("go_sql_"+name, help, nil, prometheus.Labels{"db_name": dbName})
	}
	return &dbStatsCollector{
		stats:             stats,
		maxOpen:           d("max_open_connections", "Maximum number of open connections to the database."),
		open:              d("open_connections", "The number of established connections both in use and idle."),
		inUse:             d("in_use_connections", "The number of connections currently in use."),
		idle:              d("idle_connections", "The number of idle connections."),
		waitCount:         d("wait_count_total", "The total number of connections waited for."),
		waitDuration:      d("wait_duration_seconds_total", "The total time blocked waiting for a new connection."),
		maxIdleClosed:     d("max_idle_closed_total", "The total number of connections closed due to SetMaxIdleConns."),
		maxIdleTimeClosed: d("max_idle_time_closed_total", "The total number of connections closed due to SetConnMaxIdleTime."),
		lifetimeDone:      d("max_lifetime_closed_total", "The total number of connections closed due to SetConnMaxLifetime."),
	}
}

func (c *dbStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waitCount, c.waitDuration, c.maxIdleClosed, c.maxIdleTimeClosed, c.lifetimeDone} {
		ch <- d
	}
}

func (c *dbStatsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.maxOpen, float64(s.MaxOpenConnections))
	gauge(c.open, float64(s.OpenConnections))
	gauge(c.inUse, float64(s.InUse))
	gauge(c.idle, float64(s.Idle))
	counter(c.waitCount, float64(s.WaitCount))
	counter(c.waitDuration, s.WaitDuration.Seconds())
	counter(c.maxIdleClosed, float64(s.MaxIdleClosed))
	counter(c.maxIdleTimeClosed, float64(s.MaxIdleTimeClosed))
	counter(c.lifetimeDone, float64(s.MaxLifetimeClosed))
}
