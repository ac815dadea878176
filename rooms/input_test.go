package rooms_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// remote builds events of a user of another server, as that server would
// send them (signature checks are federation's, not the room's).
type remote struct {
	h      *harness
	roomID string
	user   string
	key    ed25519.PrivateKey
}

func newRemote(h *harness, roomID, user string) *remote {
	_, key, _ := ed25519.GenerateKey(nil)
	return &remote{h: h, roomID: roomID, user: user, key: key}
}

// stateID is the current state event of (type, key) on the room's server.
func (h *harness) stateID(roomID, evType, stateKey string) string {
	h.t.Helper()
	nid, _, err := h.store.RoomInfo(context.Background(), roomID)
	if err != nil {
		h.t.Fatal(err)
	}
	ev, err := h.store.CurrentStateEvent(context.Background(), nid, evType, stateKey)
	if err != nil {
		h.t.Fatalf("state %s/%s: %v", evType, stateKey, err)
	}
	return ev.EventID
}

// event builds an event on prev with the given auth events.
func (r *remote) event(evType string, stateKey *string, content any, prev, auth []string) gomatrixserverlib.PDU {
	r.h.t.Helper()
	c, _ := json.Marshal(content)
	pe := gomatrixserverlib.ProtoEvent{
		SenderID: r.user, RoomID: r.roomID, Type: evType, StateKey: stateKey, Content: c,
		PrevEvents: prev, AuthEvents: auth, Depth: 1000,
	}
	ev, err := gomatrixserverlib.MustGetRoomVersion("11").NewEventBuilderFromProtoEvent(&pe).Build(time.Now(), "remote.test", "ed25519:r", r.key)
	if err != nil {
		r.h.t.Fatal(err)
	}
	return ev
}

// input hands the room one event and returns its result.
func (h *harness) input(roomID string, ev gomatrixserverlib.PDU, outlier bool) *messages.InputResult {
	h.t.Helper()
	reply := h.request(roomID, &messages.InputEvents{RoomId: roomID, Origin: "remote.test",
		Events: []*messages.InputEvent{{Json: ev.JSON(), Outlier: outlier}}}).(*messages.InputEventsReply)
	if reply.Error != nil || len(reply.Results) != 1 {
		h.t.Fatalf("input: %+v", reply)
	}
	return reply.Results[0]
}

func (h *harness) inTimeline(roomID, eventID string) bool {
	h.t.Helper()
	ev, err := h.store.EventByID(context.Background(), eventID)
	if errors.Is(err, persistence.ErrNotFound) {
		return false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return ev.StreamPos > 0
}

func (h *harness) head(roomID string) *persistence.RoomHead {
	h.t.Helper()
	head, err := h.store.RoomHead(context.Background(), roomID)
	if err != nil {
		h.t.Fatal(err)
	}
	return head
}

func ptr(s string) *string { return &s }

func TestRemoteEventsAreCheckedAcceptedOrRefused(t *testing.T) {
	h := newHarness(t, openStore(t, "sqlite"), 0)
	const room = "!input:test.local"
	h.createRoom(room)
	rita := newRemote(h, room, "@rita:remote.test")
	create, pl, rules := h.stateID(room, "m.room.create", ""), h.stateID(room, "m.room.power_levels", ""), h.stateID(room, "m.room.join_rules", "")
	head := h.mustSend(room, "before rita")

	join := rita.event("m.room.member", ptr(rita.user), map[string]string{"membership": "join"}, []string{head}, []string{create, pl, rules})
	if res := h.input(room, join, false); res.Rejected != "" || res.SoftFailed || res.MissingPrev != nil {
		t.Fatalf("rita's join: %+v", res)
	}
	if !h.inTimeline(room, join.EventID()) || !slices.Equal(h.head(room).Extremities, []string{join.EventID()}) {
		t.Fatalf("the join is not the room's head: %v", h.head(room).Extremities)
	}
	msg := rita.event("m.room.message", nil, map[string]string{"body": "hi"}, []string{join.EventID()}, []string{create, pl, join.EventID()})
	if res := h.input(room, msg, false); res.Rejected != "" {
		t.Fatalf("rita's message: %+v", res)
	}
	// An event first stored as an outlier (met in an auth chain or a
	// state) joins the timeline when it comes as the room's next event.
	early := rita.event("m.room.message", nil, map[string]string{"body": "early"}, []string{msg.EventID()}, []string{create, pl, join.EventID()})
	if res := h.input(room, early, true); res.Rejected != "" || h.inTimeline(room, early.EventID()) {
		t.Fatalf("as an outlier: %+v", res)
	}
	if res := h.input(room, early, false); res.Rejected != "" || !h.inTimeline(room, early.EventID()) {
		t.Fatalf("promoted: %+v, in the timeline: %v", res, h.inTimeline(room, early.EventID()))
	}
	if ext := h.head(room).Extremities; !slices.Equal(ext, []string{early.EventID()}) {
		t.Fatalf("the promoted event is not the head: %v", ext)
	}
	msg = early
	// Input again: nothing changes.
	if res := h.input(room, msg, false); res.Rejected != "" || res.EventId != msg.EventID() {
		t.Fatalf("the same message again: %+v", res)
	}

	t.Run("a remote redaction applies to its own server's events only", func(t *testing.T) {
		// Rita may not redact others (power 0): her redaction of alice's
		// message is stored but redacts nothing; of her own, it does.
		alices := h.mustSend(room, "alice's words")
		for _, tc := range []struct {
			target string
			want   bool
		}{{alices, false}, {msg.EventID(), true}} {
			red := rita.event("m.room.redaction", nil, map[string]string{"redacts": tc.target}, h.head(room).Extremities, []string{create, pl, join.EventID()})
			if res := h.input(room, red, false); res.Rejected != "" || !h.inTimeline(room, red.EventID()) {
				t.Fatalf("redaction of %s: %+v", tc.target, res)
			}
			target, err := h.store.EventByID(context.Background(), tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if got := target.RedactedBy == red.EventID(); got != tc.want {
				t.Fatalf("%s redacted: %v, want %v", tc.target, got, tc.want)
			}
		}
	})

	t.Run("a sender who is not a member is rejected and remembered", func(t *testing.T) {
		mallory := newRemote(h, room, "@mallory:remote.test")
		bad := mallory.event("m.room.message", nil, map[string]string{"body": "let me in"}, []string{msg.EventID()}, []string{create, pl})
		if res := h.input(room, bad, false); res.Rejected == "" {
			t.Fatalf("accepted: %+v", res)
		}
		if h.inTimeline(room, bad.EventID()) {
			t.Fatal("a rejected event is in the timeline")
		}
		if _, err := h.store.RejectedReason(context.Background(), bad.EventID()); err != nil {
			t.Fatalf("the rejection is not recorded: %v", err)
		}
	})

	t.Run("unknown prev or auth events are named, nothing is stored", func(t *testing.T) {
		orphan := rita.event("m.room.message", nil, map[string]string{"body": "?"}, []string{"$unknown"}, []string{create, pl, join.EventID()})
		if res := h.input(room, orphan, false); !slices.Equal(res.MissingPrev, []string{"$unknown"}) {
			t.Fatalf("missing prev: %+v", res)
		}
		noAuth := rita.event("m.room.message", nil, map[string]string{"body": "?"}, []string{msg.EventID()}, []string{create, "$gone"})
		if res := h.input(room, noAuth, false); !slices.Equal(res.MissingAuth, []string{"$gone"}) {
			t.Fatalf("missing auth: %+v", res)
		}
		for _, ev := range []gomatrixserverlib.PDU{orphan, noAuth} {
			if _, err := h.store.EventByID(context.Background(), ev.EventID()); !errors.Is(err, persistence.ErrNotFound) {
				t.Fatalf("%s was stored: %v", ev.EventID(), err)
			}
		}
	})

	t.Run("a fork is resolved, and a message merges it", func(t *testing.T) {
		// Rita's topic builds on her message while alice's builds on hers:
		// two forward extremities, and the current state is their states
		// resolved. Rita may not set the topic (power 0): her topic is
		// refused by the state before it. A message of hers on the old
		// head is allowed: it forks without conflict.
		local := h.mustSend(room, "alice's side")
		side := rita.event("m.room.message", nil, map[string]string{"body": "rita's side"}, []string{msg.EventID()}, []string{create, pl, join.EventID()})
		if res := h.input(room, side, false); res.Rejected != "" || res.SoftFailed {
			t.Fatalf("the fork's other side: %+v", res)
		}
		ext := h.head(room).Extremities
		slices.Sort(ext)
		want := []string{local, side.EventID()}
		slices.Sort(want)
		if !slices.Equal(ext, want) {
			t.Fatalf("extremities %v, want %v", ext, want)
		}
		merged := h.mustSend(room, "merge")
		prev := h.prevOf(merged)
		slices.Sort(prev)
		if !slices.Equal(prev, want) {
			t.Fatalf("the next local event's prev_events are %v, want %v", prev, want)
		}
		if ext := h.head(room).Extremities; !slices.Equal(ext, []string{merged}) {
			t.Fatalf("after the merge the extremities are %v", ext)
		}
		topic := rita.event("m.room.topic", ptr(""), map[string]string{"topic": "mine"}, []string{merged}, []string{create, pl, join.EventID()})
		if res := h.input(room, topic, false); res.Rejected == "" {
			t.Fatalf("a topic from a user without power: %+v", res)
		}
	})

	t.Run("an event the current state no longer allows is soft-failed", func(t *testing.T) {
		before := h.head(room).Extremities
		ban := h.request(room, &messages.SendEvent{RoomId: room, Event: &messages.EventContent{
			Sender: alice, Type: "m.room.member", StateKey: ptr(rita.user), Content: []byte(`{"membership":"ban"}`),
		}}).(*messages.SendEventReply)
		if ban.Error != nil {
			t.Fatal(ban.Error)
		}
		late := rita.event("m.room.message", nil, map[string]string{"body": "sent before the ban reached me"}, before, []string{create, pl, join.EventID()})
		res := h.input(room, late, false)
		if !res.SoftFailed || res.Rejected != "" {
			t.Fatalf("want soft-failed: %+v", res)
		}
		if h.inTimeline(room, late.EventID()) {
			t.Fatal("a soft-failed event is in the timeline")
		}
		if ext := h.head(room).Extremities; !slices.Equal(ext, []string{ban.EventId}) {
			t.Fatalf("a soft-failed event became an extremity: %v", ext)
		}
	})
}
