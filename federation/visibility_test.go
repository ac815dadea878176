package federation

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/soma-chat/soma/persistence"
)

// statesFake holds state snapshots as (type, key) → content.
type statesFake struct {
	RoomEventReader
	members   []persistence.Membership
	snapshots map[persistence.StateSnapshotNID]map[[2]string]string
	reads     int
}

func (f *statesFake) RoomMemberships(context.Context, persistence.RoomNID) ([]persistence.Membership, error) {
	return f.members, nil
}

func (f *statesFake) StateEventAt(_ context.Context, snapshot persistence.StateSnapshotNID, eventType, stateKey string) (*persistence.StoredEvent, error) {
	f.reads++
	content, ok := f.snapshots[snapshot][[2]string{eventType, stateKey}]
	if !ok {
		return nil, persistence.ErrNotFound
	}
	return &persistence.StoredEvent{EventID: "$s", JSON: []byte(`{"type":"` + eventType + `","state_key":"` + stateKey + `","content":` + content + `}`)}, nil
}

func TestHistoryFilterRedactsWhatTheOriginCouldNotSee(t *testing.T) {
	hv := [2]string{"m.room.history_visibility", ""}
	member := func(u string) [2]string { return [2]string{"m.room.member", u} }
	vis := func(v string) string { return `{"history_visibility":"` + v + `"}` }
	ms := func(m string) string { return `{"membership":"` + m + `"}` }
	const b = "@b:127.0.0.1:1"
	fake := &statesFake{
		members: []persistence.Membership{{UserID: "@a:x"}, {UserID: b}, {UserID: "@c:127.0.0.1:10"}},
		snapshots: map[persistence.StateSnapshotNID]map[[2]string]string{
			1: {hv: vis("shared")},
			2: {hv: vis("joined"), member(b): ms("join")},
			3: {hv: vis("joined"), member(b): ms("invite")},
			4: {hv: vis("invited"), member(b): ms("invite")},
			5: {hv: vis("joined"), member(b): ms("leave")},
			6: {},
			7: {hv: vis("world_readable")},
			8: {hv: vis("joined"), member("@c:127.0.0.1:10"): ms("join")},
			9: {hv: vis("joined")},
		},
	}
	v, _ := gomatrixserverlib.GetRoomVersion("10")
	f := (&Server{roomEvents: fake}).historyFilter(&roomView{id: "!r:x", nid: 1, version: v}, "127.0.0.1:1")
	for _, tc := range []struct {
		name     string
		snapshot persistence.StateSnapshotNID
		stream   persistence.StreamPos
		want     bool
	}{
		{"shared", 1, 5, true},
		{"joined, a user of the origin joined", 2, 5, true},
		{"joined, a user of the origin only invited", 3, 5, false},
		{"invited, a user of the origin invited", 4, 5, true},
		{"joined, the origin's user had left", 5, 5, false},
		{"no history visibility: shared", 6, 5, true},
		{"world_readable", 7, 5, true},
		{"joined, only a server whose name extends the origin's", 8, 5, false},
		{"joined, nobody of the origin", 9, 5, false},
		{"an outlier", 9, -3, true},
		{"the create event", 0, 1, true},
	} {
		ev := &persistence.StoredEvent{EventID: "$e", StateBefore: tc.snapshot, StreamPos: tc.stream,
			JSON: []byte(`{"type":"m.room.message","room_id":"!r:x","sender":"@a:x","content":{"body":"secret"},"depth":3,"prev_events":[],"auth_events":[],"origin_server_ts":1}`)}
		got, err := f.visible(context.Background(), ev)
		if err != nil || got != tc.want {
			t.Errorf("%s: visible = %v, %v; want %v", tc.name, got, err, tc.want)
		}
		j, err := f.pdu(context.Background(), ev)
		var out struct {
			Content map[string]any `json:"content"`
		}
		if err != nil || json.Unmarshal(j, &out) != nil {
			t.Fatalf("%s: pdu %s, %v", tc.name, j, err)
		}
		if whole := out.Content["body"] == "secret"; whole != tc.want {
			t.Errorf("%s: sent %s", tc.name, j)
		}
	}
	// The answer is kept per snapshot, the origin's users read once.
	before := fake.reads
	if ok, _ := f.visible(context.Background(), &persistence.StoredEvent{StateBefore: 2, StreamPos: 9}); !ok || fake.reads != before {
		t.Fatalf("a second event on snapshot 2 read the state again (%d reads)", fake.reads-before)
	}
}
