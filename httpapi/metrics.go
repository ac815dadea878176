package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// HTTPMetrics counts the client API's requests for Prometheus, by route
// pattern (never the raw path: every room ID would make new series),
// method and status class. It is a prometheus.Collector.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTPMetrics returns the request metrics, to pass in Options.Metrics
// and to register.
func NewHTTPMetrics() *HTTPMetrics {
	labels := []string{"route", "method", "status_class"}
	return &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "soma", Subsystem: "http", Name: "requests_total",
			Help: "Client API requests answered, by route pattern, method and status class.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "soma", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer a client API request (a long-polling /sync included), by route pattern, method and status class.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, labels),
	}
}

// Describe implements prometheus.Collector.
func (m *HTTPMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *HTTPMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
}

// unmatchedRoute labels requests that match no route (404s, CORS
// preflights answered before routing).
const unmatchedRoute = "unmatched"

// measure is the middleware that feeds Options.Metrics; mux is the root
// router, to find the route of a request answered before routing (a 429).
func (s *Server) measure(mux *chi.Mux) func(http.Handler) http.Handler {
	m := s.opts.Metrics
	return func(next http.Handler) http.Handler {
		if m == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			labels := []string{routeOf(mux, r), methodLabel(r.Method), statusClass(ww.Status())}
			m.requests.WithLabelValues(labels...).Inc()
			m.duration.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
		})
	}
}

// routeOf is the pattern of the route the request took ("/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"),
// or the one it would have taken when a middleware answered it first.
func routeOf(mux *chi.Mux, r *http.Request) string {
	if p := chi.RouteContext(r.Context()).RoutePattern(); p != "" {
		return p
	}
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	if p := mux.Find(chi.NewRouteContext(), r.Method, path); p != "" {
		return p
	}
	return unmatchedRoute
}

// methodLabel keeps the label's values to the methods the API uses, so
// that junk methods cannot add series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodOptions, http.MethodHead:
		return m
	}
	return "OTHER"
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(status int) string {
	if status == 0 {
		status = http.StatusOK // nothing written: net/http sends 200
	}
	if c := status/100 - 1; c >= 0 && c < len(statusClasses) {
		return statusClasses[c]
	}
	return "other"
}
