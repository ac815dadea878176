package main

import (
	"fmt"
	"testing"
	"time"
)

// waitForMessage syncs as c until body appears in roomID's timeline, and
// returns the next batch token; it fails the test after a minute.
func (c *client) waitForMessage(roomID, since, body string) string {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		res := c.sync(since, 5000)
		for _, ev := range res.Rooms.Join[roomID].Timeline.Events {
			if ev.Type == "m.room.message" && ev.Content["body"] == body {
				return res.NextBatch
			}
		}
		since = res.NextBatch
	}
	c.t.Fatalf("%q never reached %s in %s", body, c.userID, roomID)
	return ""
}

// joinedMembers is the room's joined members as c's server sees them.
func (c *client) joinedMembers(roomID string) map[string]bool {
	c.t.Helper()
	var res struct {
		Joined map[string]any `json:"joined"`
	}
	c.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/joined_members", nil, &res)
	out := map[string]bool{}
	for u := range res.Joined {
		out[u] = true
	}
	return out
}

// A user on B joins a room on A over federation; messages then flow both
// ways and reach /sync on both servers.
func TestFederationJoinAndMessagesBothWays(t *testing.T) {
	backends := backendsUnderTest()
	a := startFedServer(t, backends[0])
	b := startFedServer(t, backends[len(backends)-1])
	alice, bob := a.register("alice"), b.register("bob")

	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat", "name": "over the wire"}, &created)
	roomID := created.RoomID
	alice.send(roomID, "before", "before bob came")

	var joined struct {
		RoomID string `json:"room_id"`
	}
	bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(roomID)+"?server_name="+string(a.name), map[string]any{}, &joined)
	if joined.RoomID != roomID {
		t.Fatalf("join answered room %q", joined.RoomID)
	}
	for name, c := range map[string]*client{"A": alice, "B": bob} {
		if m := c.joinedMembers(roomID); !m[alice.userID] || !m[bob.userID] {
			t.Fatalf("%s sees joined members %v", name, m)
		}
	}
	var nameEv map[string]string
	bob.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state/m.room.name", nil, &nameEv)
	if nameEv["name"] != "over the wire" {
		t.Fatalf("B sees the room's name as %v", nameEv)
	}

	aliceSince := alice.sync("", 0).NextBatch
	bobSince := bob.sync("", 0).NextBatch
	for i := range 3 {
		fromA := fmt.Sprintf("from alice %d", i)
		alice.send(roomID, fmt.Sprintf("a%d", i), fromA)
		bobSince = bob.waitForMessage(roomID, bobSince, fromA)
		fromB := fmt.Sprintf("from bob %d", i)
		bob.send(roomID, fmt.Sprintf("b%d", i), fromB)
		aliceSince = alice.waitForMessage(roomID, aliceSince, fromB)
	}
}

// Invites cross servers: a user on B invited into a room on A sees the
// invite with the room's stripped state, then joins through A; another
// rejects the invite, and A sees the rejection.
func TestFederationInvites(t *testing.T) {
	backends := backendsUnderTest()
	a := startFedServer(t, backends[0])
	b := startFedServer(t, backends[len(backends)-1])
	alice, carol, dave := a.register("alice"), b.register("carol"), b.register("dave")

	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat", "name": "invitation only"}, &created)
	roomID := created.RoomID
	for _, u := range []*client{carol, dave} {
		alice.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/invite", map[string]any{"user_id": u.userID}, nil)
	}
	for _, u := range []*client{carol, dave} {
		invite, ok := u.sync("", 0).Rooms.Invite[roomID]
		if !ok {
			t.Fatalf("%s's sync has no invite to %s", u.userID, roomID)
		}
		var named, invited bool
		for _, ev := range invite.InviteState.Events {
			named = named || (ev.Type == "m.room.name" && ev.Content["name"] == "invitation only")
			invited = invited || (ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == u.userID && ev.Content["membership"] == "invite")
		}
		if !named || !invited {
			t.Fatalf("%s's invite state lacks the room's name or the invite: %+v", u.userID, invite.InviteState.Events)
		}
	}

	carol.must("POST", "/_matrix/client/v3/join/"+pathEscape(roomID), map[string]any{}, nil)
	if m := alice.joinedMembers(roomID); !m[carol.userID] {
		t.Fatalf("A does not see carol joined: %v", m)
	}
	dave.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/leave", map[string]any{}, nil)
	var member map[string]any
	alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state/m.room.member/"+dave.userID, nil, &member)
	if member["membership"] != "leave" {
		t.Fatalf("A sees dave's membership as %v after he rejected the invite", member)
	}
	if _, still := dave.sync("", 0).Rooms.Invite[roomID]; still {
		t.Fatal("dave's sync still shows the rejected invite")
	}
}
