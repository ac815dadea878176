package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soma-chat/soma/cmd/internal/somaproc"
)

// The end-to-end tests run each command against the real server, built
// once from ./cmd/soma and started as a separate process, as cmd/soma's
// own tests do. The server is built without -race: registering is bcrypt
// at full cost, which the race detector makes seconds per account; what is
// under test here is the tool, and it runs in-process, with -race when
// `make test` asks for it.
var somaBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "somaload-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if somaBinary, err = somaproc.Build(dir, false, "somactl"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startSoma runs the server on SQLite in a temporary directory on a free
// loopback port, with rate limits off so that the figures are the
// server's, and returns its base URL. It stops when the test ends.
func startSoma(t *testing.T) *somaproc.Server {
	t.Helper()
	return somaproc.Start(t, somaBinary,
		"SOMA_DATA_DIR="+t.TempDir(),
		"SOMA_SERVER_NAME=somaload.test",
		"SOMA_RATE_LIMITS_ENABLED=false",
	)
}

// startFedSoma is startSoma with federation on, as cmd/soma's
// startFedServer does it: the server is named 127.0.0.1:<port>, its
// federation listener serves TLS there with a self-signed pair from
// somactl generate-tls, and it trusts its peers' self-signed ones.
func startFedSoma(t *testing.T) *somaproc.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	name := ln.Addr().String()
	ln.Close() // the server binds it again: its name must carry the port
	env := []string{
		"SOMA_DATA_DIR=" + t.TempDir(),
		"SOMA_SERVER_NAME=" + name,
		"SOMA_RATE_LIMITS_ENABLED=false",
		"SOMA_FEDERATION_LISTEN=" + name,
		"SOMA_FEDERATION_SKIP_TLS_VERIFY=true",
		"SOMA_FEDERATION_ALLOW_PRIVATE_NETWORKS=true",
	}
	somactl := exec.Command(filepath.Join(filepath.Dir(somaBinary), "somactl"), "generate-tls")
	somactl.Env = append(os.Environ(), env...)
	if out, err := somactl.CombinedOutput(); err != nil {
		t.Fatalf("somactl generate-tls: %v\n%s", err, out)
	}
	s := somaproc.Start(t, somaBinary, env...)
	if s.FederationURL != "https://"+name {
		t.Fatalf("federation listens at %q, want https://%s", s.FederationURL, name)
	}
	return s
}

// somaload runs the tool in-process with -json and decodes its figures.
func somaload(t *testing.T, figures any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args, "-json", "-max-duration", "50s")
	code := run(context.Background(), args, &stdout, &stderr)
	t.Logf("somaload %s:\n%s", strings.Join(args, " "), stderr.String())
	if code != 0 {
		t.Fatalf("somaload exited %d", code)
	}
	if err := json.Unmarshal(stdout.Bytes(), figures); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}
}

type latencyFigures struct {
	Count int     `json:"count"`
	MinMS float64 `json:"min_ms"`
	P50MS float64 `json:"p50_ms"`
	P90MS float64 `json:"p90_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// checkSane fails unless the latencies are count samples in order and
// below limit.
func (l latencyFigures) checkSane(t *testing.T, what string, count int, limit time.Duration) {
	t.Helper()
	if l.Count != count {
		t.Errorf("%s: %d samples, want %d", what, l.Count, count)
	}
	if !(l.MinMS <= l.P50MS && l.P50MS <= l.P90MS && l.P90MS <= l.P99MS && l.P99MS <= l.MaxMS) {
		t.Errorf("%s: percentiles out of order: %+v", what, l)
	}
	if l.MaxMS <= 0 || l.MaxMS > float64(limit.Milliseconds()) {
		t.Errorf("%s: max %.2fms, want in (0, %s]", what, l.MaxMS, limit)
	}
}

type commonFigures struct {
	RunID        string         `json:"run_id"`
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind"`
	RateLimited  int            `json:"rate_limited"`
	Stopped      string         `json:"stopped"`
}

func (c commonFigures) checkClean(t *testing.T) {
	t.Helper()
	if c.Errors != 0 || len(c.ErrorsByKind) != 0 || c.RateLimited != 0 || c.Stopped != "" {
		t.Errorf("errors %d %v, rate limited %d, stopped %q; want none", c.Errors, c.ErrorsByKind, c.RateLimited, c.Stopped)
	}
}

func TestCommandsAgainstSoma(t *testing.T) {
	srv := startSoma(t)
	base := srv.BaseURL
	tokens := filepath.Join(t.TempDir(), "tokens.json")

	t.Run("SendDeliversEveryMessageIntoEveryRoom", func(t *testing.T) {
		for _, tc := range []struct{ users, rooms, messages int }{
			{4, 1, 40},
			{5, 3, 45}, // reuses the 4 accounts of the first run and registers one
		} {
			var f struct {
				commonFigures
				Users      int            `json:"users"`
				RoomIDs    []string       `json:"room_ids"`
				Sent       int            `json:"sent"`
				EventsPerS float64        `json:"events_per_s"`
				Latency    latencyFigures `json:"latency"`
			}
			somaload(t, &f, "send", "-url", base, "-token-file", tokens,
				"-users", fmt.Sprint(tc.users), "-rooms", fmt.Sprint(tc.rooms), "-messages", fmt.Sprint(tc.messages))
			f.checkClean(t)
			if f.Users != tc.users || len(f.RoomIDs) != tc.rooms || f.Sent != tc.messages || f.EventsPerS <= 0 {
				t.Errorf("users %d, rooms %v, sent %d, %.1f events/s; want %d users, %d rooms, %d sent",
					f.Users, f.RoomIDs, f.Sent, f.EventsPerS, tc.users, tc.rooms, tc.messages)
			}
			f.Latency.checkSane(t, "send latency", tc.messages, 30*time.Second)

			// The server holds what the tool says it sent, evenly spread.
			owner := readTokens(t, tokens)[0]
			for _, roomID := range f.RoomIDs {
				if n := countMessages(t, base, owner, roomID, "somaload "+f.RunID+" message "); n != tc.messages/tc.rooms {
					t.Errorf("room %s holds %d of the run's messages, want %d", roomID, n, tc.messages/tc.rooms)
				}
			}
		}
		if n := len(readTokens(t, tokens)); n != 5 {
			t.Errorf("token file lists %d accounts, want 5", n)
		}
	})

	t.Run("JoinStormJoinsEveryUser", func(t *testing.T) {
		var f struct {
			commonFigures
			Users        int            `json:"users"`
			Joined       int            `json:"joined"`
			JoinsPerS    float64        `json:"joins_per_s"`
			MembersAfter int            `json:"members_after"`
			Latency      latencyFigures `json:"latency"`
		}
		somaload(t, &f, "joinstorm", "-url", base, "-users", "20", "-concurrency", "8")
		f.checkClean(t)
		if f.Users != 20 || f.Joined != 20 || f.MembersAfter != 21 || f.JoinsPerS <= 0 {
			t.Errorf("users %d, joined %d, members after %d, %.1f joins/s; want 20, 20, 21", f.Users, f.Joined, f.MembersAfter, f.JoinsPerS)
		}
		f.Latency.checkSane(t, "join latency", 20, 30*time.Second)
	})

	t.Run("SyncWakeSeesEverySendPromptly", func(t *testing.T) {
		var f struct {
			commonFigures
			Woken      int            `json:"woken"`
			Missed     int            `json:"missed"`
			Mismatched int            `json:"mismatched"`
			FromStart  latencyFigures `json:"wake_after_send_start"`
			Send       latencyFigures `json:"send_latency"`
		}
		somaload(t, &f, "syncwake", "-url", base, "-pairs", "2", "-rounds", "3", "-settle", "100ms")
		f.checkClean(t)
		if f.Woken != 6 || f.Missed != 0 || f.Mismatched != 0 {
			t.Errorf("woken %d, missed %d, mismatched %d; want 6, 0, 0", f.Woken, f.Missed, f.Mismatched)
		}
		// Under the 30s long-poll: the send woke the parked /sync (an
		// unwoken one returns empty at 30s and only then finds the event).
		// The margin is for a loaded machine.
		f.FromStart.checkSane(t, "wake after send start", 6, 20*time.Second)
		f.Send.checkSane(t, "send latency", 6, 20*time.Second)
		if f.FromStart.MinMS <= 0 {
			t.Errorf("a wake %.2fms after its send started: the event was seen before it was sent", f.FromStart.MinMS)
		}
	})

	t.Run("BigRoomReachesEverySyncerAndReadsServerCPU", func(t *testing.T) {
		if srv.MetricsURL == "" {
			t.Fatal("the server runs without metrics")
		}
		var f struct {
			commonFigures
			Members   int            `json:"members"`
			Syncers   int            `json:"syncers"`
			Delivered int            `json:"delivered"`
			Missed    int            `json:"missed"`
			BaseCPU   float64        `json:"baseline_cpu_per_message_ms"`
			FanCPU    float64        `json:"fanout_cpu_per_message_ms"`
			Wake      latencyFigures `json:"wake_after_send_response"`
			Send      latencyFigures `json:"send_latency"`
		}
		somaload(t, &f, "bigroom", "-url", base, "-metrics-url", srv.MetricsURL, "-members", "5", "-syncers", "4", "-messages", "3", "-settle", "50ms")
		f.checkClean(t)
		if f.Members != 6 || f.Syncers != 4 || f.Delivered != 12 || f.Missed != 0 {
			t.Errorf("members %d, syncers %d, delivered %d, missed %d; want 6, 4, 12, 0", f.Members, f.Syncers, f.Delivered, f.Missed)
		}
		// CPU time is read, not asserted: only that it was read at all.
		if f.BaseCPU < 0 || f.FanCPU < 0 {
			t.Errorf("server CPU per message %.3f / %.3f ms: not read from %s", f.BaseCPU, f.FanCPU, srv.MetricsURL)
		}
		f.Wake.checkSane(t, "wake after send response", 12, 20*time.Second)
		f.Send.checkSane(t, "send latency", 6, 20*time.Second)
	})
}

// With -remote-url the receivers are on a second server and join the
// senders' rooms over federation; every send still wakes its receiver.
func TestSyncWakeAcrossFederation(t *testing.T) {
	senders, receivers := startFedSoma(t), startFedSoma(t)
	var f struct {
		commonFigures
		URL        string         `json:"url"`
		RemoteURL  string         `json:"remote_url"`
		Woken      int            `json:"woken"`
		Missed     int            `json:"missed"`
		Mismatched int            `json:"mismatched"`
		FromStart  latencyFigures `json:"wake_after_send_start"`
	}
	somaload(t, &f, "syncwake", "-url", senders.BaseURL, "-remote-url", receivers.BaseURL, "-pairs", "2", "-rounds", "3", "-settle", "100ms")
	f.checkClean(t)
	if f.URL != senders.BaseURL || f.RemoteURL != receivers.BaseURL {
		t.Errorf("url %q, remote_url %q; want %q, %q", f.URL, f.RemoteURL, senders.BaseURL, receivers.BaseURL)
	}
	if f.Woken != 6 || f.Missed != 0 || f.Mismatched != 0 {
		t.Errorf("woken %d, missed %d, mismatched %d; want 6, 0, 0", f.Woken, f.Missed, f.Mismatched)
	}
	if f.FromStart.Count != 6 || f.FromStart.MinMS <= 0 {
		t.Errorf("wake after send start: %+v; want 6 samples, each after its send started", f.FromStart)
	}
}

func TestSyncWakeChecksRemoteURL(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-remote-url", "http://matrix.example.org"}, "not a loopback address"},
		{[]string{"-remote-url", "127.0.0.1:8009"}, "want http://"},
		{[]string{"-url", "http://127.0.0.1:8008", "-remote-url", "http://127.0.0.1:8008/"}, "-remote-url is -url"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"syncwake"}, tc.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.wantErr) {
			t.Errorf("syncwake %v: exit %d, %q; want 2 and an error with %q", tc.args, code, stderr.String(), tc.wantErr)
		}
	}
}

func TestParseProcessCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total{node=\"a b\"} 1.5\n", 1.5, true},
		{"process_cpu_seconds_total 2\nprocess_cpu_seconds_totalish 7\n", 2, true},
		{"go_goroutines 3\n", 0, false},
		{"process_cpu_seconds_total nope\n", 0, false},
	} {
		got, err := parseProcessCPU(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseProcessCPU(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func readTokens(t *testing.T, path string) []user {
	t.Helper()
	tf, err := readTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tf.Users
}

// countMessages pages /messages back to the start of the room and counts
// the m.room.message events whose body starts with prefix.
func countMessages(t *testing.T, base string, u user, roomID, prefix string) int {
	t.Helper()
	c := newClient(base, 30*time.Second, 1)
	defer c.close()
	n, from := 0, ""
	for range 1000 {
		path := "/_matrix/client/v3/rooms/" + pathSegment(roomID) + "/messages?dir=b&limit=100"
		if from != "" {
			path += "&from=" + pathSegment(from)
		}
		r := c.call(context.Background(), http.MethodGet, path, u.AccessToken, nil, 0)
		if !r.ok() {
			t.Fatalf("%s", r)
		}
		var page struct {
			Chunk []struct {
				Type    string         `json:"type"`
				Content map[string]any `json:"content"`
			} `json:"chunk"`
			End string `json:"end"`
		}
		if err := r.decode(&page); err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Chunk {
			if body, _ := ev.Content["body"].(string); ev.Type == "m.room.message" && strings.HasPrefix(body, prefix) {
				n++
			}
		}
		if page.End == "" || len(page.Chunk) == 0 {
			return n
		}
		from = page.End
	}
	t.Fatalf("/messages of %s did not end", roomID)
	return 0
}
