package federation

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// queued is one QueueEDU call.
type queued struct {
	to      []string
	eduType string
	content map[string]any
}

type fakeEDUQueue struct{ got []queued }

func (q *fakeEDUQueue) QueueEDU(_ context.Context, destinations []string, eduType string, content []byte) error {
	var c map[string]any
	if err := json.Unmarshal(content, &c); err != nil {
		return err
	}
	q.got = append(q.got, queued{slices.Clone(destinations), eduType, c})
	return nil
}

type fakeDestinations struct {
	room, sharing []string
	roomReads     *int
}

func (d fakeDestinations) JoinedServersOfRoom(context.Context, string) ([]string, error) {
	if d.roomReads != nil {
		*d.roomReads++
	}
	return d.room, nil
}

func (d fakeDestinations) ServersSharingRoomsWith(context.Context, string) ([]string, error) {
	return d.sharing, nil
}

func TestARoomsServersAreReadOnceABurst(t *testing.T) {
	ctx := context.Background()
	reads := 0
	e := NewOutboundEDUs("here.example", &fakeEDUQueue{}, fakeDestinations{room: []string{"a.example"}, roomReads: &reads})
	now := time.Unix(1000, 0)
	e.now = func() time.Time { return now }
	for range 3 {
		if err := e.Typing(ctx, "!r:here.example", "@alice:here.example", true); err != nil {
			t.Fatal(err)
		}
	}
	if reads != 1 {
		t.Fatalf("%d reads of the room's servers for a burst of typing, want 1", reads)
	}
	now = now.Add(roomServersTTL)
	if err := e.Typing(ctx, "!r:here.example", "@alice:here.example", false); err != nil {
		t.Fatal(err)
	}
	if reads != 2 {
		t.Fatalf("%d reads after the cache expired, want 2", reads)
	}
}

func TestOutboundEDUsGoOnlyFromLocalUsersToOtherServers(t *testing.T) {
	ctx := context.Background()
	q := &fakeEDUQueue{}
	e := NewOutboundEDUs("here.example", q, fakeDestinations{room: []string{"a.example", "here.example"}, sharing: []string{"b.example", "here.example"}})

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Typing(ctx, "!r:here.example", "@alice:here.example", true))
	must(e.Typing(ctx, "!r:here.example", "@bob:a.example", true)) // a remote user's: not echoed
	must(e.Receipt(ctx, "!r:here.example", "@alice:here.example", "$ev", "", 42))
	must(e.Presence(ctx, PresenceUpdate{UserID: "@alice:here.example", Presence: "online", LastActive: time.Unix(100, 0)}, time.Unix(101, 0)))
	must(e.Presence(ctx, PresenceUpdate{UserID: "@bob:a.example", Presence: "online"}, time.Now()))
	must(e.ToDevice(ctx, "@alice:here.example", "m.room_key", map[string]map[string]json.RawMessage{
		"@bob:a.example":      {"D1": json.RawMessage(`{"k":1}`)},
		"@carol:a.example":    {"*": json.RawMessage(`{"k":2}`)},
		"@dan:b.example":      {"D2": json.RawMessage(`{"k":3}`)},
		"@alice:here.example": {"D3": json.RawMessage(`{"k":4}`)},
		"not a user":          {"D4": json.RawMessage(`{"k":5}`)},
	}))

	var types []string
	for _, g := range q.got {
		if slices.Contains(g.to, "here.example") {
			t.Fatalf("%s queued for this server: %v", g.eduType, g.to)
		}
		types = append(types, g.eduType)
	}
	want := []string{EDUTyping, EDUReceipt, EDUPresence, EDUDirectToDevice, EDUDirectToDevice}
	if !slices.Equal(types, want) {
		t.Fatalf("queued %v, want %v", types, want)
	}
	if p := q.got[2].content["push"].([]any)[0].(map[string]any); p["last_active_ago"] != float64(1000) || !slices.Equal(q.got[2].to, []string{"b.example"}) {
		t.Fatalf("presence %v to %v", p, q.got[2].to)
	}
	perServer := map[string][]string{}
	for _, g := range q.got[3:] {
		if len(g.to) != 1 || g.content["sender"] != "@alice:here.example" || g.content["message_id"] == "" {
			t.Fatalf("to-device EDU %+v", g)
		}
		for u := range g.content["messages"].(map[string]any) {
			perServer[g.to[0]] = append(perServer[g.to[0]], u)
		}
	}
	for _, users := range perServer {
		slices.Sort(users)
	}
	if !slices.Equal(perServer["a.example"], []string{"@bob:a.example", "@carol:a.example"}) || !slices.Equal(perServer["b.example"], []string{"@dan:b.example"}) || len(perServer) != 2 {
		t.Fatalf("to-device messages by server: %v", perServer)
	}
}
