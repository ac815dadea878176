package rooms

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/soma-chat/soma/actors/messages"
)

func testSigner(t testing.TB) *Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{ServerName: "test.local", KeyID: "ed25519:test", Key: priv}
}

func content(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// createdRoom builds and applies the initial events of a private room.
func createdRoom(t *testing.T, s *Signer, version string) *Room {
	t.Helper()
	r, err := NewRoom("!room:test.local", version)
	if err != nil {
		t.Fatal(err)
	}
	req := &CreateRequest{Preset: "private_chat", Name: ptr("Tea")}
	evs, err := req.Compose("@alice:test.local", version, CreatorProfile{DisplayName: "Alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range evs {
		ev, err := r.Build(c, time.Now(), s)
		if err != nil {
			t.Fatalf("building %s: %v", c.Type, err)
		}
		r.Apply(ev)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

func TestCreateRoomBuildsAValidChain(t *testing.T) {
	for _, version := range []string{"10", "11"} {
		t.Run(version, func(t *testing.T) {
			s := testSigner(t)
			r := createdRoom(t, s, version)
			if got := r.State.Membership("@alice:test.local"); got != "join" {
				t.Fatalf("creator membership = %q", got)
			}
			for _, typ := range []string{"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.history_visibility", "m.room.name"} {
				if r.State.Get(typ, "") == nil {
					t.Errorf("state lacks %s", typ)
				}
			}
			if r.Depth != 7 || len(r.Extremities) != 1 {
				t.Errorf("depth %d extremities %v, want 7 and one", r.Depth, r.Extremities)
			}
			msg, err := r.Build(&messages.EventContent{Sender: "@alice:test.local", Type: "m.room.message", Content: content(t, map[string]any{"body": "hi"})}, time.Now(), s)
			if err != nil {
				t.Fatal(err)
			}
			if got := msg.PrevEventIDs(); len(got) != 1 || got[0] != r.Extremities[0] {
				t.Errorf("prev_events = %v, want the head %v", got, r.Extremities)
			}
			if msg.Version() != gomatrixserverlib.RoomVersion(version) {
				t.Errorf("version %s", msg.Version())
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	s := testSigner(t)
	r := createdRoom(t, s, "11")
	cases := []struct {
		name string
		ev   *messages.EventContent
		code string
	}{
		{"non-member sends", &messages.EventContent{Sender: "@eve:test.local", Type: "m.room.message", Content: content(t, map[string]any{})}, "M_FORBIDDEN"},
		{"uninvited join", &messages.EventContent{Sender: "@eve:test.local", Type: "m.room.member", StateKey: ptr("@eve:test.local"), Content: content(t, map[string]any{"membership": "join"})}, "M_FORBIDDEN"},
		{"content not an object", &messages.EventContent{Sender: "@alice:test.local", Type: "m.room.message", Content: []byte(`[1]`)}, "M_BAD_JSON"},
		{"float in content", &messages.EventContent{Sender: "@alice:test.local", Type: "m.room.message", Content: []byte(`{"x":1.5}`)}, "M_BAD_JSON"},
		{"too large", &messages.EventContent{Sender: "@alice:test.local", Type: "m.room.message", Content: content(t, map[string]any{"body": string(make([]byte, MaxPDUBytes))})}, "M_TOO_LARGE"},
		{"second create", &messages.EventContent{Sender: "@alice:test.local", Type: "m.room.create", StateKey: ptr(""), Content: content(t, map[string]any{})}, "M_ROOM_IN_USE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Build(c.ev, time.Now(), s)
			var re *Error
			if !errors.As(err, &re) || re.ErrCode != c.code {
				t.Fatalf("err = %v, want %s", err, c.code)
			}
		})
	}
}

func TestInviteThenJoin(t *testing.T) {
	s := testSigner(t)
	r := createdRoom(t, s, "11")
	bob := "@bob:test.local"
	inv, err := r.Build(&messages.EventContent{Sender: "@alice:test.local", Type: "m.room.member", StateKey: &bob, Content: content(t, map[string]any{"membership": "invite"})}, time.Now(), s)
	if err != nil {
		t.Fatal(err)
	}
	r.Apply(inv)
	join, err := r.Build(&messages.EventContent{Sender: bob, Type: "m.room.member", StateKey: &bob, Content: content(t, map[string]any{"membership": "join"})}, time.Now(), s)
	if err != nil {
		t.Fatalf("invited user cannot join: %v", err)
	}
	r.Apply(join)
	if r.State.Membership(bob) != "join" || !r.Members.IsJoined(bob) || r.Members.Joined() != 2 {
		t.Fatal("bob is not joined")
	}
	leave, err := r.Build(&messages.EventContent{Sender: bob, Type: "m.room.member", StateKey: &bob, Content: content(t, map[string]any{"membership": "leave"})}, time.Now(), s)
	if err != nil {
		t.Fatal(err)
	}
	r.Apply(leave)
	if r.Members.IsJoined(bob) || r.Members.Joined() != 1 {
		t.Fatal("bob left but is still counted as joined")
	}
	if got := r.Members.Servers(); len(got) != 1 || got[0] != "test.local" {
		t.Fatalf("servers = %v", got)
	}
}
