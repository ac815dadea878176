package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestKillAfterAckLosesNothing sends concurrently, SIGKILLs the server
// mid-stream, restarts it and checks every acknowledged event is readable
// at once, and that a client retrying a transaction gets the same event.
func TestKillAfterAckLosesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		alice := srv.register("alice")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID

		const senders, each = 4, 15
		var mu sync.Mutex
		acked := map[string]string{} // txn → event ID
		var wg sync.WaitGroup
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func(s int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					txn := fmt.Sprintf("s%d-%d", s, i)
					var res struct {
						EventID string `json:"event_id"`
					}
					// Errors are expected once the process is gone.
					if alice.doQuiet("PUT", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/send/m.room.message/"+txn,
						map[string]any{"msgtype": "m.text", "body": txn}, &res) == 200 {
						mu.Lock()
						acked[txn] = res.EventID
						n := len(acked)
						mu.Unlock()
						if n == senders*each/2 {
							srv.Kill()
						}
					}
				}
			}(s)
		}
		wg.Wait()
		srv.Kill()
		if len(acked) < senders*each/2 {
			t.Fatalf("only %d sends acknowledged before the kill", len(acked))
		}

		srv = startServer(t, dataDir, env...)
		alice.base = srv.baseURL
		for txn, id := range acked {
			var ev event
			alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/event/"+id, nil, &ev)
			if ev.Content["body"] != txn {
				t.Errorf("event %s has body %v, want %s", id, ev.Content["body"], txn)
			}
			// The client retries after the crash: same txn, same event.
			var res struct {
				EventID string `json:"event_id"`
			}
			alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/send/m.room.message/"+txn,
				map[string]any{"msgtype": "m.text", "body": txn}, &res)
			if res.EventID != id {
				t.Errorf("retrying txn %s gave %s, want %s", txn, res.EventID, id)
			}
		}
		// /messages and /sync see them all too.
		seen := map[string]bool{}
		for _, e := range alice.history(room) {
			seen[e.EventID] = true
		}
		s := alice.syncFilter(`{"room":{"timeline":{"limit":200}}}`)
		inSync := map[string]bool{}
		for _, e := range s.Rooms.Join[room].Timeline.Events {
			inSync[e.EventID] = true
		}
		for txn, id := range acked {
			if !seen[id] {
				t.Errorf("acknowledged %s (%s) missing from /messages after restart", id, txn)
			}
			if !inSync[id] {
				t.Errorf("acknowledged %s (%s) missing from /sync after restart", id, txn)
			}
		}
		// Every room's head, extremities, state and projections are what a
		// recomputation from its stored events gives: somactl verify-rooms,
		// run on the stopped server's database, must find nothing.
		srv.Stop()
		out, err := runSomactl(t, dataDir, env, "verify-rooms", "-max-problems", "0")
		t.Logf("somactl verify-rooms:\n%s", out)
		if err != nil || !strings.Contains(out, "ok        "+room+" ") {
			t.Errorf("somactl verify-rooms found %s inconsistent (%v): see its output above", room, err)
		}
	})
}

// runSomactl runs the somactl binary (built by TestMain beside soma)
// against the test server's configuration and returns what it printed; the
// error is its failure or non-zero exit.
func runSomactl(t *testing.T, dataDir string, env []string, args ...string) (string, error) {
	t.Helper()
	somactlBinary := filepath.Join(filepath.Dir(somaBinary), "somactl")
	cmd := exec.Command(somactlBinary, args...)
	cmd.Env = append(os.Environ(), "SOMA_DATA_DIR="+dataDir, "SOMA_SERVER_NAME=test.local")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
