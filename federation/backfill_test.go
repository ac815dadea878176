package federation

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
)

// chainEvent is a message of room version 10 with the given prev events.
func chainEvent(t *testing.T, body string, depth int64, prev ...string) gomatrixserverlib.PDU {
	t.Helper()
	if prev == nil {
		prev = []string{}
	}
	raw, _ := json.Marshal(map[string]any{
		"type": "m.room.message", "room_id": "!r:a.test", "sender": "@a:a.test",
		"content": map[string]any{"body": body}, "depth": depth, "prev_events": prev,
		"auth_events": []string{}, "origin_server_ts": 1, "hashes": map[string]any{"sha256": "x"},
		"signatures": map[string]any{},
	})
	ev, err := gomatrixserverlib.MustGetRoomVersion("10").NewEventFromTrustedJSON(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// A backfill answer is kept to the events asked for and their ancestors
// within it, deepest first, at most the limit: events off the walk are
// dropped, whatever the server sends.
func TestBackfillAnswerIsKeptToTheWalk(t *testing.T) {
	root := chainEvent(t, "root", 1)
	var chain []gomatrixserverlib.PDU
	prev := root
	for i := range 5 {
		ev := chainEvent(t, fmt.Sprint(i), int64(i+2), prev.EventID())
		chain = append(chain, ev)
		prev = ev
	}
	stray := chainEvent(t, "stray", 9, root.EventID())
	answer := append([]gomatrixserverlib.PDU{stray, root}, chain...)
	ids := func(evs []gomatrixserverlib.PDU) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.EventID())
		}
		return out
	}
	from := []string{chain[3].EventID()}
	want := []string{chain[3].EventID(), chain[2].EventID(), chain[1].EventID()}
	if got := ids(onWalk(slices.Clone(answer), from, 3)); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	want = append(want, chain[0].EventID(), root.EventID())
	if got := ids(onWalk(slices.Clone(answer), from, 100)); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}
