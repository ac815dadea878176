package main

import (
	"fmt"
	"net/url"
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

// waitJoined waits until c's server has userID joined to roomID.
func (c *client) waitJoined(roomID, userID string) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !c.joinedMembers(roomID)[userID] {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s never saw %s join %s", c.userID, userID, roomID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A user on B joins a room on A over federation; messages then flow both
// ways and reach /sync on both servers.
func TestFederationJoinAndMessagesBothWays(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	backends := backendsUnderTest()
	a := startFedServer(t, backends[0])
	b := startFedServer(t, backends[len(backends)-1])
	alice, bob := a.register("alice"), b.register("bob")

	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat", "name": "over the wire", "room_alias_name": "wire"}, &created)
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
	// By alias: B asks A's directory, then joins through the servers A names.
	bea := b.register("bea")
	bea.must("POST", "/_matrix/client/v3/join/"+url.PathEscape("#wire:"+string(a.name)), map[string]any{}, &joined)
	if joined.RoomID != roomID {
		t.Fatalf("joining by alias answered room %q", joined.RoomID)
	}
	// B is in the room already: bea's join is B's own event, which
	// reaches A in a transaction.
	alice.waitJoined(roomID, bea.userID)
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
	t.Parallel() // servers of its own; mostly waiting on the network
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
	// B is in the room now (carol): dave's rejection is an event of B's,
	// which reaches A in a transaction.
	dave.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/leave", map[string]any{}, nil)
	deadline := time.Now().Add(time.Minute)
	for {
		var member map[string]any
		alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state/m.room.member/"+dave.userID, nil, &member)
		if member["membership"] == "leave" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A sees dave's membership as %v a minute after he rejected the invite", member)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, still := dave.sync("", 0).Rooms.Invite[roomID]; still {
		t.Fatal("dave's sync still shows the rejected invite")
	}
}

// restart stops the server and starts it again on its data, with its
// name and federation port; clients must follow it (client.on).
func (f *fedServer) restart(t *testing.T) {
	t.Helper()
	f.Stop()
	f.start(t)
}

// start starts a stopped server again.
func (f *fedServer) start(t *testing.T) {
	t.Helper()
	f.server = startServer(t, f.dataDir, f.env...)
}

// on points the client at the server's (new) client API address.
func (c *client) on(s *fedServer) *client {
	c.base = s.baseURL
	return c
}

// stateIDs is the room's whole current state as event IDs by (type, state
// key), as the client's server has it.
func (c *client) stateIDs(roomID string) map[string]string {
	c.t.Helper()
	var evs []event
	c.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state", nil, &evs)
	out := map[string]string{}
	for _, ev := range evs {
		sk := ""
		if ev.StateKey != nil {
			sk = *ev.StateKey
		}
		out[ev.Type+"|"+sk] = ev.EventID
	}
	return out
}

// fastRetries makes a server retry a failed transaction within a second,
// so that tests of downtime need not wait out production backoff.
var fastRetries = []string{"SOMA_FEDERATION_RETRY_MIN=200ms", "SOMA_FEDERATION_RETRY_MAX=1s"}

// fastPair starts A and B (the first and last backends under test) with
// fastRetries and extra settings.
func fastPair(t *testing.T, extra ...string) (a, b *fedServer) {
	t.Helper()
	backends := backendsUnderTest()
	env := append(append([]string{}, fastRetries...), extra...)
	return startFedServer(t, backends[0], env...), startFedServer(t, backends[len(backends)-1], env...)
}

// publicRoomWithBob is a public room of alice's on A that bob of B joined.
func publicRoomWithBob(t *testing.T, a, b *fedServer) (alice, bob *client, roomID string) {
	t.Helper()
	alice, bob = a.register("alice"), b.register("bob")
	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
	bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(created.RoomID)+"?server_name="+string(a.name), map[string]any{}, nil)
	return alice, bob, created.RoomID
}

// A server that was down gets what was sent to it meanwhile once it is
// back, and sends what its users sent while the other was down.
func TestFederationCatchUpAfterDowntime(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	a, b := fastPair(t)
	alice, bob, roomID := publicRoomWithBob(t, a, b)
	bobSince := bob.sync("", 0).NextBatch

	b.Stop()
	for i := range 3 {
		alice.send(roomID, fmt.Sprintf("down%d", i), fmt.Sprintf("while B was down %d", i))
	}
	b.start(t)
	bob.on(b).waitForMessage(roomID, bobSince, "while B was down 2")
	var msgs []string
	for _, ev := range bob.history(roomID) {
		if ev.Type == "m.room.message" {
			msgs = append(msgs, fmt.Sprint(ev.Content["body"]))
		}
	}
	if len(msgs) < 3 {
		t.Fatalf("B's history after catching up: %v", msgs)
	}

	aliceSince := alice.sync("", 0).NextBatch
	a.Stop()
	bob.send(roomID, "back", "sent while A was down")
	a.start(t)
	alice.on(a).waitForMessage(roomID, aliceSince, "sent while A was down")
}

// Concurrent state changes on two servers that cannot reach each other
// fork the room; once they can, both resolve it to the same state.
func TestFederationForkResolvesToTheSameState(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	a, b := fastPair(t)
	alice, bob, roomID := publicRoomWithBob(t, a, b)
	pl := alice.stateContent(roomID, "m.room.power_levels")
	users, _ := pl["users"].(map[string]any)
	users[bob.userID] = 100
	alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state/m.room.power_levels/", pl, nil)
	bobSince := bob.sync("", 0).NextBatch
	alice.send(roomID, "sync", "bob is an admin now")
	bob.waitForMessage(roomID, bobSince, "bob is an admin now")

	// The partition: each server changes the topic while the other is down.
	b.Stop()
	alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state/m.room.topic/", map[string]any{"topic": "from A"}, nil)
	a.Stop()
	b.start(t)
	bob.on(b).must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state/m.room.topic/", map[string]any{"topic": "from B"}, nil)
	a.start(t)
	alice.on(a)

	// Each server learns the other's topic; a message from each merges
	// the forward extremities.
	deadline := time.Now().Add(time.Minute)
	for {
		sa, sb := alice.stateIDs(roomID), bob.stateIDs(roomID)
		if fmt.Sprint(sa) == fmt.Sprint(sb) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the servers' states never agreed:\nA %v\nB %v", sa, sb)
		}
		time.Sleep(200 * time.Millisecond)
	}
	topic := alice.stateContent(roomID, "m.room.topic")["topic"]
	if topic != "from A" && topic != "from B" {
		t.Fatalf("the resolved topic is %v", topic)
	}
	// Both sides of the fork are history on both servers: the room took
	// the other server's topic and resolved, rather than refusing it.
	for name, c := range map[string]*client{"A": alice, "B": bob} {
		topics := map[any]bool{}
		for _, ev := range c.history(roomID) {
			if ev.Type == "m.room.topic" {
				topics[ev.Content["topic"]] = true
			}
		}
		if !topics["from A"] || !topics["from B"] {
			t.Fatalf("%s's history has the topics %v, want both sides of the fork", name, topics)
		}
	}
	aliceSince := alice.sync("", 0).NextBatch
	bob.send(roomID, "after", "after the fork")
	alice.waitForMessage(roomID, aliceSince, "after the fork")
	if got := bob.stateContent(roomID, "m.room.topic")["topic"]; got != topic {
		t.Fatalf("after the merge A says %v, B says %v", topic, got)
	}
}

// A server too far behind to fetch the gap before an event (more than
// get_missing_events gives) takes the state before it from the sender and
// accepts it; the gap fills when the server that made it returns.
func TestFederationGapTooLongForMissingEvents(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	a, b := fastPair(t)
	c := startFedServer(t, backendsUnderTest()[0], fastRetries...)
	alice, bob, roomID := publicRoomWithBob(t, a, b)
	carol := c.register("carol")
	carol.must("POST", "/_matrix/client/v3/join/"+pathEscape(roomID)+"?server_name="+string(a.name), map[string]any{}, nil)
	bob.waitJoined(roomID, carol.userID)
	bobSince := bob.sync("", 0).NextBatch

	b.Stop()
	aliceSince := alice.sync("", 0).NextBatch
	for i := range 25 {
		carol.send(roomID, fmt.Sprintf("gap%d", i), fmt.Sprintf("carol %d", i))
	}
	alice.waitForMessage(roomID, aliceSince, "carol 24")
	c.Stop()
	b.start(t)
	alice.send(roomID, "after", "after the gap")
	bob.on(b).waitForMessage(roomID, bobSince, "after the gap")
	for _, ev := range bob.history(roomID) {
		if ev.Content["body"] == "carol 0" {
			t.Fatal("B has the start of the gap before carol's server returned: the gap was never too long")
		}
	}

	c.start(t)
	deadline := time.Now().Add(time.Minute)
	for {
		seen := map[any]bool{}
		for _, ev := range bob.history(roomID) {
			seen[ev.Content["body"]] = true
		}
		if seen["carol 0"] && seen["carol 24"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol's messages never filled B's gap: %v", seen)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
