package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors/messages"
)

// logBuffer collects log lines written from the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON lines logged so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func (b *logBuffer) raw() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// accessLine waits for the access line of the request that hit route.
// The line is written as the handler returns, which may be after the
// client has read the response.
func (b *logBuffer) accessLine(t *testing.T, method, route string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: a loaded -race run is slow
	for {
		for _, l := range b.lines(t) {
			if l["message"] == "request" && l["method"] == method && l["route"] == route {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access line for %s %s in:\n%s", method, route, b.raw())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendingRooms answers every SendEvent with the same event ID, but for
// room !broken:test.local, which answers with a reply of the wrong type.
type sendingRooms struct{ eventID string }

func (f sendingRooms) RequestRoom(_ context.Context, roomID string, msg proto.Message) (proto.Message, error) {
	if roomID == "!broken:test.local" {
		return &messages.CreateRoomReply{}, nil
	}
	if _, ok := msg.(*messages.SendEvent); ok {
		return &messages.SendEventReply{EventId: f.eventID}, nil
	}
	return nil, context.DeadlineExceeded
}

// newLoggingServer is a test server logging at debug level into the buffer.
func newLoggingServer(t *testing.T) (*testServer, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	st := openTestStore(t)
	api := NewServer(Options{ServerName: "test.local", RegistrationEnabled: true}, st, sendingRooms{eventID: "$sent"}, nil,
		zerolog.New(logs).Level(zerolog.DebugLevel))
	ts := &testServer{Server: httptest.NewServer(api.Handler()), API: api, Store: st}
	t.Cleanup(ts.Close)
	return ts, logs
}

func TestAccessLinesNameTheRouteCallerRoomAndEvent(t *testing.T) {
	t.Parallel()
	ts, logs := newLoggingServer(t)
	alice := ts.register(t, "alice")

	path := clientV3 + "/rooms/%21room:test.local/send/m.room.message/txn1"
	status, body := ts.do(t, "PUT", path, alice.Token, map[string]any{"msgtype": "m.text", "body": "hi"})
	if status != http.StatusOK || body["event_id"] != "$sent" {
		t.Fatalf("send: %d %v", status, body)
	}
	l := logs.accessLine(t, "PUT", "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}")
	for k, want := range map[string]any{
		"user_id": "@alice:test.local", "room_id": "!room:test.local", "event_id": "$sent",
		"status": float64(200), "level": "debug",
	} {
		if l[k] != want {
			t.Errorf("access line %s = %v, want %v (line %v)", k, l[k], want, l)
		}
	}
	if id, _ := l["request_id"].(string); len(id) != 16 {
		t.Errorf("access line request_id = %v", l["request_id"])
	}
	if b, _ := l["bytes"].(float64); b != float64(len(`{"event_id":"$sent"}`)) {
		t.Errorf("access line bytes = %v", l["bytes"])
	}
	if _, ok := l["duration_ms"].(float64); !ok {
		t.Errorf("access line without duration_ms: %v", l)
	}
}

func TestAccessLinesNeverCarryTheQueryString(t *testing.T) {
	t.Parallel()
	ts, logs := newLoggingServer(t)
	alice := ts.register(t, "alice")
	status, body := ts.do(t, "GET", clientV3+"/account/whoami?access_token="+alice.Token, "", nil)
	if status != http.StatusOK {
		t.Fatalf("whoami: %d %v", status, body)
	}
	l := logs.accessLine(t, "GET", "/_matrix/client/v3/account/whoami")
	if l["user_id"] != "@alice:test.local" {
		t.Fatalf("access line: %v", l)
	}
	if strings.Contains(logs.raw(), alice.Token) {
		t.Fatalf("the access token was logged:\n%s", logs.raw())
	}
	// An unknown path is logged with an empty route, and its status.
	ts.do(t, "GET", "/nowhere", "", nil)
	if l := logs.accessLine(t, "GET", ""); l["status"] != float64(404) {
		t.Fatalf("unmatched request: %v", l)
	}
}

func TestLinesLoggedDuringARequestCarryItsIDCallerAndRoom(t *testing.T) {
	t.Parallel()
	ts, logs := newLoggingServer(t)
	alice := ts.register(t, "alice")
	// The fake room answers this one with the wrong reply: a bug, which
	// the handler logs as an internal error.
	req, err := http.NewRequest("PUT", ts.URL+clientV3+"/rooms/%21broken:test.local/send/m.room.message/txn1", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("send to the broken room: %d", resp.StatusCode)
	}
	access := logs.accessLine(t, "PUT", "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}")
	if access["level"] != "warn" || access["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Fatalf("access line of a 500: %v (X-Request-Id %q)", access, resp.Header.Get("X-Request-Id"))
	}
	for _, l := range logs.lines(t) {
		if l["message"] != "internal error" {
			continue
		}
		if l["request_id"] != access["request_id"] || l["user_id"] != "@alice:test.local" || l["room_id"] != "!broken:test.local" {
			t.Fatalf("internal error line: %v", l)
		}
		return
	}
	t.Fatalf("no internal error line in:\n%s", logs.raw())
}
