package storagetest

import (
	"context"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func testRedactions(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!redact:x")
	r.create(t, "@alice:x")
	r.mustCommit(t, r.message("@alice:x", "oops"))
	target := r.events[len(r.events)-1]
	redaction := r.event("m.room.redaction", nil, "@alice:x", `{"redacts":"`+target+`"}`)
	redaction.Redacts = target
	second := r.event("m.room.redaction", nil, "@alice:x", `{}`)
	second.Redacts = target
	unknown := r.event("m.room.redaction", nil, "@alice:x", `{}`)
	unknown.Redacts = "$not-stored"
	r.mustCommit(t, redaction, second, unknown)

	ev, err := s.EventByID(ctx, target)
	noErr(t, "EventByID", err)
	if ev.RedactedBy != redaction.EventID || string(ev.Redaction) != string(redaction.JSON) {
		t.Fatalf("redacted event: RedactedBy %q, Redaction %s; want the first redaction %s", ev.RedactedBy, ev.Redaction, redaction.EventID)
	}
	if string(ev.JSON) != r.json[target] {
		t.Fatal("the stored JSON of a redacted event must stay as it was sent")
	}
	evs, err := s.RoomEvents(ctx, r.nid, 0, 1<<40, 100, false)
	noErr(t, "RoomEvents", err)
	for _, e := range evs {
		if (e.EventID == target) != (e.RedactedBy != "") {
			t.Fatalf("RoomEvents: %s has RedactedBy %q", e.EventID, e.RedactedBy)
		}
	}
}
