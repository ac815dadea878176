package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRequestMetricsAreByRoutePatternNotPath(t *testing.T) {
	m := NewHTTPMetrics()
	ts := newTestServer(t, func(c *testServerConfig) {
		c.Options.Metrics = m
		c.Options.RateLimits = RateLimits{Enabled: true,
			PerUser: RateLimit{Rate: 1000, Burst: 1000}, Login: RateLimit{Rate: 1000, Burst: 1000},
			PerIP: RateLimit{Rate: 0.001, Burst: 6}}
	})
	for _, room := range []string{"!a:test.local", "!b:test.local"} {
		// No token: 401, answered by the route's handler.
		if code, _ := ts.do(t, "GET", clientV3+"/rooms/"+room+"/state", "", nil); code != http.StatusUnauthorized {
			t.Fatalf("state of %s: %d", room, code)
		}
	}
	ts.do(t, "GET", "/_matrix/client/versions", "", nil)
	ts.do(t, "GET", "/_matrix/client/versions", "", nil)
	ts.do(t, "GET", "/no/such/path", "", nil)
	ts.do(t, "DELETE", "/_matrix/client/versions", "", nil) // 405 in a sub-router
	// The per-IP bucket (6) is empty now: rateLimit answers 429 before
	// routing, and the request still counts under its route.
	if code, _ := ts.do(t, "GET", clientV3+"/rooms/!c:test.local/state", "", nil); code != http.StatusTooManyRequests {
		t.Fatalf("7th request: %d, want 429", code)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "soma_http_requests_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			var key []string
			for _, l := range metric.GetLabel() {
				if strings.Contains(l.GetValue(), "test.local") {
					t.Errorf("label %s=%q carries a raw path", l.GetName(), l.GetValue())
				}
				key = append(key, l.GetValue())
			}
			got[strings.Join(key, " ")] = metric.GetCounter().GetValue()
		}
	}
	// Labels in order: method, route, status_class (sorted by name).
	want := map[string]float64{
		"GET /_matrix/client/v3/rooms/{roomId}/state 4xx": 3,
		"GET /_matrix/client/versions 2xx":                2,
		"GET unmatched 4xx":                               1,
		// Past a sub-router's prefix, chi names the sub-router.
		"DELETE /_matrix/client/* 4xx": 1,
	}
	if len(got) != len(want) {
		t.Errorf("series: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("soma_http_requests_total{%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
