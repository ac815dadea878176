package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsCountWhatClientsDid sends messages through the real server
// and reads /metrics as Prometheus would: per-kind totals at least what was
// sent, a series for the room, HTTP counts by route, the database pool,
// sync waiters; and once the room passivates, its series are gone.
func TestMetricsCountWhatClientsDid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		// Long enough that the room stays active from its creation to the
		// checks below on a loaded machine (a passivation resets the room's
		// series), short enough to wait for at the end.
		srv := startServer(t, dataDir, append(env, "SOMA_ROOMS_IDLE_TIMEOUT=10s")...)
		if srv.MetricsURL == "" {
			t.Fatalf("the ready line names no metrics listener:\n%s", srv.Logs())
		}
		alice := srv.register("alice")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID

		const sent = 15
		for i := range sent {
			alice.send(room, fmt.Sprintf("m%d", i), "hello")
		}

		// A long-polling sync is a waiter until a send wakes it.
		initial := alice.sync("", 0)
		woke := make(chan struct{})
		go func() { alice.sync(initial.NextBatch, 20000); close(woke) }()
		waitForMetric(t, srv.MetricsURL, "a sync waiter", func(m scraped) bool { return m.value("soma_sync_waiters", "") == 1 })
		alice.send(room, "wake", "wake up")
		<-woke

		node := `node="test.local"`
		roomLabel := `room_id="` + room + `"`
		counts := []struct {
			series  string
			labels  []string
			atLeast float64
		}{
			{"soma_actor_messages_processed_total", []string{`kind="room"`, node}, sent + 1},
			{"soma_actor_events_committed_total", []string{`kind="room"`, node}, sent + 1},
			{"soma_actor_activations_total", []string{`kind="room"`}, 1},
			{"soma_actors_active", []string{`kind="room"`}, 1},
			{"soma_actors_active", []string{`kind="sync_notifier"`}, 1},
			{"soma_actor_messages_processed_total", []string{`kind="sync_notifier"`}, 1},
			{"soma_actors_active", []string{`kind="pusher"`}, 1},
			{"soma_actor_messages_processed_total", []string{`kind="pusher"`}, sent + 1},
			{"soma_actor_batch_size_count", []string{`kind="room"`}, 1},
			{"soma_actor_commit_duration_seconds_count", []string{`kind="room"`}, 1},
			{"soma_actor_message_duration_seconds_count", []string{`kind="room"`}, sent + 1},
			{"soma_room_events_committed_total", []string{roomLabel, node}, sent + 1},
			{"soma_room_messages_processed_total", []string{roomLabel}, sent + 1},
			{"soma_room_commit_duration_seconds_count", []string{roomLabel}, 1},
			{"soma_room_joined_members", []string{roomLabel}, 1},
			{"soma_room_series_rooms", nil, 1},
			{"soma_http_requests_total", []string{`route="/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"`, `method="PUT"`, `status_class="2xx"`}, sent + 1},
			{"soma_http_requests_total", []string{`route="/_matrix/client/v3/createRoom"`, `method="POST"`}, 1},
			{"soma_http_request_duration_seconds_count", []string{`route="/_matrix/client/v3/sync"`}, 2},
			{"go_sql_max_open_connections", []string{node}, 1},
			{"go_goroutines", []string{node}, 1},
			{"process_resident_memory_bytes", nil, 1},
		}
		// A room actor answers before its metrics count the message (and
		// the woken sync may return before either): poll until the counts
		// are in, with a generous bound, then report what is missing.
		var m scraped
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			m = scrape(t, srv.MetricsURL)
			all := true
			for _, c := range counts {
				all = all && m.value(c.series, c.labels...) >= c.atLeast
			}
			if all || time.Now().After(deadline) {
				break
			}
		}
		for _, c := range counts {
			if v := m.value(c.series, c.labels...); !(v >= c.atLeast) {
				t.Errorf("%s%v = %v, want at least %v", c.series, c.labels, v, c.atLeast)
			}
		}
		for _, series := range []string{"soma_actor_mailbox_depth", "soma_actor_restarts_total", "soma_actor_dead_letters_total", "soma_actor_state_resolution_duration_seconds_count"} {
			if v := m.value(series); v < 0 {
				t.Errorf("%s is missing", series)
			}
		}
		for s := range m {
			if strings.Contains(s, "soma_http_") && strings.Contains(s, "!") {
				t.Errorf("an HTTP series carries a raw path: %s", s)
			}
		}

		// Idle for rooms.idle_timeout, the room passivates: its series go.
		waitForMetric(t, srv.MetricsURL, "the idle room passivates", func(m scraped) bool {
			return m.value("soma_actor_passivations_total", `kind="room"`) >= 1 && m.value("soma_room_events_committed_total", roomLabel) < 0
		})
		if t.Failed() {
			t.Logf("/metrics:\n%s", scrapeText(t, srv.MetricsURL))
		}
	})
}

// scraped is a /metrics page: the value of each series line.
type scraped map[string]float64

// value is the sum over the series named name that carry every label
// given (`key="value"`); -1 when there is none.
func (m scraped) value(name string, labels ...string) float64 {
	sum, found := 0.0, false
	for series, v := range m {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if l != "" && !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

func scrape(t *testing.T, url string) scraped {
	t.Helper()
	m := scraped{}
	sc := bufio.NewScanner(strings.NewReader(scrapeText(t, url)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unparsable metrics line %q", line)
		}
		m[line[:i]] = v
	}
	return m
}

func waitForMetric(t *testing.T, url, what string, cond func(scraped) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond(scrape(t, url)) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s; /metrics:\n%s", what, scrapeText(t, url))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
