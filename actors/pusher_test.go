package actors

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// planCall is one PlanPushes call a test planner saw.
type planCall struct {
	room     string
	from, to persistence.StreamPos
}

// gatedPlanner records its calls and holds each until the test lets it go.
type gatedPlanner struct {
	calls   chan planCall
	release chan struct{}
}

func (p *gatedPlanner) PlanPushes(_ context.Context, roomID string, from, to persistence.StreamPos) ([]Push, error) {
	p.calls <- planCall{roomID, from, to}
	<-p.release
	return nil, nil
}

func nextCall(t *testing.T, calls <-chan planCall) planCall {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(10 * time.Second): // a hang, not a timing assertion
		t.Fatal("no plan came")
		return planCall{}
	}
}

// TestPusherPlansEachRoomFromWhereItStopped: a room's first plan starts at
// the start position, advances that arrive while a plan runs are planned
// together next, and rooms are planned independently.
func TestPusherPlansEachRoomFromWhereItStopped(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	planner := &gatedPlanner{calls: make(chan planCall, 16), release: make(chan struct{})}
	p := NewPusher(system, PusherOptions{Planner: planner, Start: 100, Log: zerolog.Nop()}, nil)
	defer p.Stop()

	p.Publish(&messages.RoomAdvanced{RoomId: "!a:x", StreamPos: 101})
	if c := nextCall(t, planner.calls); c != (planCall{"!a:x", 100, 101}) {
		t.Fatalf("first plan = %+v, want !a:x (100, 101]", c)
	}
	// While !a:x's plan runs: more of it, and another room.
	p.Publish(&messages.RoomAdvanced{RoomId: "!a:x", StreamPos: 103})
	p.Publish(&messages.RoomAdvanced{RoomId: "!a:x", StreamPos: 105})
	p.Publish(&messages.RoomAdvanced{RoomId: "!b:x", StreamPos: 104})
	p.Publish(&messages.RoomAdvanced{RoomId: "", StreamPos: 106}) // a user's own stream: not a room
	if c := nextCall(t, planner.calls); c != (planCall{"!b:x", 100, 104}) {
		t.Fatalf("second plan = %+v, want !b:x (100, 104] beside the running one", c)
	}
	planner.release <- struct{}{} // !a:x's first plan ends
	if c := nextCall(t, planner.calls); c != (planCall{"!a:x", 101, 105}) {
		t.Fatalf("third plan = %+v, want !a:x (101, 105]: both later advances at once", c)
	}
	close(planner.release)
}

// deletions records the pushers a gateway's answers deleted.
type deletions struct {
	mu   sync.Mutex
	keys []string
}

func (d *deletions) DeletePusher(_ context.Context, userID, appID, pushkey string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys = append(d.keys, userID+"/"+appID+"/"+pushkey)
	return nil
}

// TestGatewayRetriesServerErrorsAndDeletesRejectedPushkeys: 5xx and 429
// are retried up to the bound, other 4xx are not, and a 200 naming the
// pushkey as rejected deletes the pusher.
func TestGatewayRetriesServerErrorsAndDeletesRejectedPushkeys(t *testing.T) {
	for _, c := range []struct {
		name      string
		answers   []int // status of each attempt; the last repeats
		rejected  bool
		attempts  int
		deletedOK bool
	}{
		{"delivered after failures", []int{503, 429, 200}, false, 3, false},
		{"rejected pushkey", []int{200}, true, 1, true},
		{"client error is final", []int{400}, false, 1, false},
		{"gives up at the bound", []int{500}, false, 4, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			attempts := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				status := c.answers[min(attempts, len(c.answers)-1)]
				attempts++
				mu.Unlock()
				w.WriteHeader(status)
				if status == 200 && c.rejected {
					_, _ = w.Write([]byte(`{"rejected":["other","key1"]}`))
				} else if status == 200 {
					_, _ = w.Write([]byte(`{"rejected":[]}`))
				}
			}))
			defer srv.Close()
			d := &deletions{}
			g := newGateway(GatewayOptions{MaxAttempts: 4, Backoff: time.Millisecond}, d, zerolog.Nop())
			g.send(context.Background(), Push{UserID: "@u:x", AppID: "app", Pushkey: "key1", URL: srv.URL + "/_matrix/push/v1/notify", Body: []byte(`{}`)})
			mu.Lock()
			defer mu.Unlock()
			if attempts != c.attempts {
				t.Errorf("%d attempts, want %d", attempts, c.attempts)
			}
			if got := len(d.keys) == 1 && d.keys[0] == "@u:x/app/key1"; got != c.deletedOK {
				t.Errorf("deleted %v, want the pusher deleted: %v", d.keys, c.deletedOK)
			}
		})
	}
}

// TestGatewayPushesOnlyToHTTPURLs: a URL of another scheme is never
// requested.
func TestGatewayPushesOnlyToHTTPURLs(t *testing.T) {
	d := &deletions{}
	g := newGateway(GatewayOptions{Backoff: time.Millisecond}, d, zerolog.Nop())
	g.client.Transport = roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Fatal("a file: URL was requested")
		return nil, nil
	})
	g.send(context.Background(), Push{UserID: "@u:x", AppID: "app", Pushkey: "k", URL: "file:///etc/passwd"})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// panickyPlanner panics on its first plan and records the later ones.
type panickyPlanner struct {
	calls chan planCall
	once  sync.Once
}

func (p *panickyPlanner) PlanPushes(_ context.Context, roomID string, from, to persistence.StreamPos) ([]Push, error) {
	p.once.Do(func() { panic("planner bug") })
	p.calls <- planCall{roomID, from, to}
	return nil, nil
}

// TestPusherSurvivesAPanickingPlan: a plan that panics loses its events,
// not the process, and the room's next advance is planned after them.
func TestPusherSurvivesAPanickingPlan(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	planner := &panickyPlanner{calls: make(chan planCall, 4)}
	p := NewPusher(system, PusherOptions{Planner: planner, Start: 10, Log: zerolog.Nop()}, nil)
	defer p.Stop()
	p.Publish(&messages.RoomAdvanced{RoomId: "!a:x", StreamPos: 11})
	// The panicking plan still ends; the next starts after it.
	p.Publish(&messages.RoomAdvanced{RoomId: "!a:x", StreamPos: 12})
	if c := nextCall(t, planner.calls); c != (planCall{"!a:x", 11, 12}) {
		t.Fatalf("plan after the panic = %+v, want !a:x (11, 12]", c)
	}
}
