package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/persistence"
)

const historyRoom = "!r:remote.test"

// historyStore is the part of storage a history walk reads, over a graph
// of events; events in remote are stored once RemoteHistory fetches them.
type historyStore struct {
	persistence.Store // nil: the walk must not need the rest
	stored            map[string]*persistence.StoredEvent
	remote            map[string]*persistence.StoredEvent
}

// graphEvent makes a message event of historyRoom with its prev events.
func graphEvent(id string, depth int64, pos persistence.StreamPos, prev ...string) *persistence.StoredEvent {
	if prev == nil {
		prev = []string{}
	}
	prevJSON, _ := json.Marshal(prev)
	raw := fmt.Sprintf(`{"type":"m.room.message","room_id":%q,"sender":"@a:remote.test","content":{"body":%q},"depth":%d,"prev_events":%s,"auth_events":[],"origin_server_ts":1,"hashes":{"sha256":"x"},"signatures":{}}`,
		historyRoom, id, depth, prevJSON)
	return &persistence.StoredEvent{
		RoomNID: 1, RoomID: historyRoom, RoomVersion: "10", EventID: id, Type: "m.room.message",
		Sender: "@a:remote.test", Depth: depth, StreamPos: pos, JSON: []byte(raw),
	}
}

func (h *historyStore) EventByID(_ context.Context, id string) (*persistence.StoredEvent, error) {
	if ev, ok := h.stored[id]; ok {
		return ev, nil
	}
	return nil, persistence.ErrNotFound
}

func (h *historyStore) RoomInfo(context.Context, string) (persistence.RoomNID, string, error) {
	return 1, "10", nil
}

func (h *historyStore) RoomMemberships(context.Context, persistence.RoomNID) ([]persistence.Membership, error) {
	return []persistence.Membership{
		{UserID: "@a:remote.test", Membership: "join"},
		{UserID: "@me:test.local", Membership: "join"},
	}, nil
}

func (h *historyStore) RoomEvents(context.Context, persistence.RoomNID, persistence.StreamPos, persistence.StreamPos, int, bool) ([]persistence.StoredEvent, error) {
	return nil, nil // no timeline: the origin state is none (shared)
}

// fakeRemote "fetches" from the historyStore's remote events.
type fakeRemote struct {
	h     *historyStore
	down  bool
	calls [][]string
}

func (f *fakeRemote) Backfill(_ context.Context, roomID, version string, from []string, limit int, servers []spec.ServerName) (int, error) {
	f.calls = append(f.calls, from)
	if f.down {
		return 0, errors.New("no server answered")
	}
	if roomID != historyRoom || version != "10" || !slices.Equal(servers, []spec.ServerName{"remote.test"}) {
		return 0, fmt.Errorf("asked %s %s of %v", roomID, version, servers)
	}
	// Deepest first from the from events, as /backfill answers.
	front := slices.Clone(from)
	n := 0
	for len(front) > 0 && n < limit {
		slices.SortFunc(front, func(a, b string) int {
			da, db := int64(-1), int64(-1)
			if ev := f.h.remote[a]; ev != nil {
				da = ev.Depth
			}
			if ev := f.h.remote[b]; ev != nil {
				db = ev.Depth
			}
			return int(db - da)
		})
		id := front[0]
		front = front[1:]
		ev := f.h.remote[id]
		if ev == nil || f.h.stored[id] != nil {
			continue
		}
		f.h.stored[id] = ev
		n++
		prev, _ := prevEventsOf(ev)
		front = append(front, prev...)
	}
	return n, nil
}

func newHistoryServer(h *historyStore, remote RemoteHistory) *Server {
	return &Server{opts: Options{ServerName: "test.local", RemoteHistory: remote}, store: h, log: zerolog.Nop()}
}

func walkIDs(page *historyPage) []string {
	var ids []string
	for _, ev := range page.events {
		ids = append(ids, ev.EventID)
	}
	return ids
}

// The walk goes deepest first (ties by event ID), takes each event once
// however many children it has, skips the timeline's events, pages on
// from its frontier and ends at an event without prev events.
func TestHistoryWalkIsDeepestFirstAndPagesWithoutRepeats(t *testing.T) {
	h := &historyStore{stored: map[string]*persistence.StoredEvent{}}
	for _, ev := range []*persistence.StoredEvent{
		graphEvent("$create", 1, -1),
		graphEvent("$a", 2, -2, "$create"),
		graphEvent("$c", 3, -3, "$a"),
		graphEvent("$b", 3, -4, "$a"),
		graphEvent("$d", 4, -5, "$b", "$c"),
		graphEvent("$timeline", 4, 7, "$c"),
	} {
		h.stored[ev.EventID] = ev
	}
	s := newHistoryServer(h, nil)
	a := &roomAccess{roomID: historyRoom, nid: 1, userID: "@me:test.local", current: "join", joinedLater: true, bound: 100}
	f := &roomEventFilter{}
	var all []string
	frontier := []string{"$d", "$timeline"}
	for range 10 {
		page, err := s.walkHistory(context.Background(), a, s.newVisibilityChecker(a), f, frontier, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, walkIDs(page)...)
		if frontier = page.frontier; len(frontier) == 0 {
			break
		}
		if tok, ok, err := parseHistoryToken(historyToken(frontier)); !ok || err != nil || !slices.Equal(tok, frontier) {
			t.Fatalf("the token of %v reads back as %v (%v, %v)", frontier, tok, ok, err)
		}
	}
	if want := []string{"$d", "$b", "$c", "$a", "$create"}; !slices.Equal(all, want) {
		t.Fatalf("walked %v, want %v", all, want)
	}
}

// Events not stored are fetched (as many as the page still needs) before
// the walk goes on; an event no server gives ends its branch; when no
// server answers, the page says so and keeps its frontier.
func TestHistoryWalkFetchesWhatIsNotStored(t *testing.T) {
	h := &historyStore{stored: map[string]*persistence.StoredEvent{}, remote: map[string]*persistence.StoredEvent{}}
	h.stored["$create"] = graphEvent("$create", 1, -1)
	for i := 1; i <= 6; i++ {
		ev := graphEvent(fmt.Sprintf("$m%d", i), int64(i+1), -10, "$create")
		if i > 1 {
			ev = graphEvent(fmt.Sprintf("$m%d", i), int64(i+1), -10, fmt.Sprintf("$m%d", i-1))
		}
		h.remote[ev.EventID] = ev
	}
	remote := &fakeRemote{h: h}
	s := newHistoryServer(h, remote)
	a := &roomAccess{roomID: historyRoom, nid: 1, userID: "@me:test.local", current: "join", joinedLater: true, bound: 100}
	f := &roomEventFilter{}

	page, err := s.walkHistory(context.Background(), a, s.newVisibilityChecker(a), f, []string{"$m6"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := walkIDs(page); !slices.Equal(got, []string{"$m6", "$m5", "$m4"}) || !slices.Equal(page.frontier, []string{"$m3"}) || page.unreachable {
		t.Fatalf("first page %v, frontier %v, unreachable %v", got, page.frontier, page.unreachable)
	}
	if len(remote.calls) != 1 {
		t.Fatalf("fetched %d times for one page", len(remote.calls))
	}

	remote.down = true
	page, err = s.walkHistory(context.Background(), a, s.newVisibilityChecker(a), f, page.frontier, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.events) != 0 || !page.unreachable || !slices.Equal(page.frontier, []string{"$m3"}) {
		t.Fatalf("with no server: %v, frontier %v, unreachable %v", walkIDs(page), page.frontier, page.unreachable)
	}

	remote.down = false
	delete(h.remote, "$m2") // the server does not have it
	page, err = s.walkHistory(context.Background(), a, s.newVisibilityChecker(a), f, page.frontier, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := walkIDs(page); !slices.Equal(got, []string{"$m3"}) || len(page.frontier) != 0 || page.unreachable {
		t.Fatalf("past a missing event: %v, frontier %v, unreachable %v", got, page.frontier, page.unreachable)
	}
}
