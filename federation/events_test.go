package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// v3Fake is a room of version 3, whose event IDs are standard base64:
// they hold '/' and '+', which requesters escape in paths and queries.
type v3Fake struct {
	RoomEventReader
	event persistence.StoredEvent
}

func (f *v3Fake) RoomInfo(_ context.Context, roomID string) (persistence.RoomNID, string, error) {
	if roomID != f.event.RoomID {
		return 0, "", persistence.ErrNotFound
	}
	return 1, "3", nil
}

func (f *v3Fake) ServerJoined(context.Context, persistence.RoomNID, string) (bool, error) {
	return true, nil
}

func (f *v3Fake) CurrentStateEvent(context.Context, persistence.RoomNID, string, string) (*persistence.StoredEvent, error) {
	return nil, persistence.ErrNotFound
}

func (f *v3Fake) EventByID(_ context.Context, id string) (*persistence.StoredEvent, error) {
	if id != f.event.EventID {
		return nil, persistence.ErrNotFound
	}
	ev := f.event
	return &ev, nil
}

func TestEventIDsWithSlashAndPlusAreReadFromEscapedPathsAndQueries(t *testing.T) {
	f := newXMatrixFixture(t)
	const id = "$ab/cd+ef"
	f.srv.roomEvents = &v3Fake{event: persistence.StoredEvent{
		EventID: id, RoomID: "!r:x", RoomVersion: "3", StreamPos: 4, Depth: 2,
		JSON: []byte(`{"auth_events":[],"content":{"body":"hi"},"depth":2,"origin_server_ts":1,"prev_events":[],"room_id":"!r:x","sender":"@a:x","type":"m.room.message"}`),
	}}
	for _, tc := range []struct {
		uri, list string
		n         int
	}{
		{"/_matrix/federation/v1/event/" + url.PathEscape(id), "pdus", 1},
		{"/_matrix/federation/v1/backfill/" + url.PathEscape("!r:x") + "?limit=5&v=" + url.QueryEscape(id), "pdus", 1},
		{"/_matrix/federation/v1/event_auth/" + url.PathEscape("!r:x") + "/" + url.PathEscape(id), "auth_chain", 0},
	} {
		w := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(w, f.signedGet(t, tc.uri))
		var body map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &body); w.Code != 200 || err != nil {
			t.Fatalf("%s: %d %s", tc.uri, w.Code, w.Body)
		}
		var list []json.RawMessage
		if err := json.Unmarshal(body[tc.list], &list); err != nil || list == nil || len(list) != tc.n {
			t.Fatalf("%s: %s, want %d in %s", tc.uri, w.Body, tc.n, tc.list)
		}
	}
}

func TestWalksRefuseTooManyStartingEvents(t *testing.T) {
	f := newXMatrixFixture(t)
	f.srv.roomEvents = &v3Fake{event: persistence.StoredEvent{EventID: "$x", RoomID: "!r:x"}}
	q := url.Values{"limit": {"10"}}
	for i := range maxWalk + 1 {
		q.Add("v", fmt.Sprintf("$e%d", i))
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, f.signedGet(t, "/_matrix/federation/v1/backfill/"+url.PathEscape("!r:x")+"?"+q.Encode()))
	if w.Code != 400 || !strings.Contains(w.Body.String(), "M_INVALID_PARAM") {
		t.Fatalf("backfill from %d events: %d %s", maxWalk+1, w.Code, w.Body)
	}
}
