package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestTwoUsersChat walks the foundation's user journey on each backend:
// register, create a room, invite, join, chat both ways through /sync,
// read history, change topic and display name, leave.
func TestTwoUsersChat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		alice, bob := srv.register("alice"), srv.register("bob")

		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "private_chat", "name": "Tea", "topic": "Brewing", "invite": []string{bob.userID},
		}, &created)
		room := created.RoomID

		// Bob sees the invite with stripped state, then joins.
		initial := bob.sync("", 0)
		inv, ok := initial.Rooms.Invite[room]
		if !ok {
			t.Fatalf("bob's initial sync has no invite to %s: %+v", room, initial.Rooms)
		}
		if !hasEvent(inv.InviteState.Events, "m.room.name", "") {
			t.Errorf("invite_state lacks the room name: %+v", inv.InviteState.Events)
		}
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)

		// Bob waits on /sync; Alice's message must wake him.
		after := bob.sync(initial.NextBatch, 0)
		if _, ok := after.Rooms.Join[room]; !ok {
			t.Fatalf("bob's sync after joining lacks the room: %+v", after.Rooms)
		}
		woke := make(chan syncResp, 1)
		start := time.Now()
		go func() { woke <- bob.sync(after.NextBatch, 45000) }()
		time.Sleep(200 * time.Millisecond) // let the long poll register
		sent := alice.send(room, "t1", "hello bob")
		got := <-woke
		// Far from the 45s timeout, with room for a slow (loaded, -race) send.
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("long poll returned only at its timeout (%v)", d)
		}
		if !timelineHas(got, room, sent) {
			t.Fatalf("bob's woken sync lacks %s: %+v", sent, got.Rooms.Join[room])
		}

		// And back.
		aliceSync := alice.sync("", 0)
		reply := bob.send(room, "t1", "hi alice") // same txn ID, other user: a new event
		if reply == sent {
			t.Fatal("txn IDs must be scoped per device, not global")
		}
		next := alice.sync(aliceSync.NextBatch, 10000)
		if !timelineHas(next, room, reply) {
			t.Fatalf("alice's incremental sync lacks bob's reply: %+v", next.Rooms.Join[room])
		}
		// Bob's own device sees its transaction ID echoed; Alice's does not.
		for _, e := range bob.sync("", 0).Rooms.Join[room].Timeline.Events {
			if e.EventID == reply && e.Unsigned["transaction_id"] != "t1" {
				t.Errorf("bob's event lacks its transaction_id: %+v", e.Unsigned)
			}
		}
		for _, e := range next.Rooms.Join[room].Timeline.Events {
			if _, ok := e.Unsigned["transaction_id"]; ok && e.Sender != alice.userID {
				t.Errorf("another user's transaction_id leaked to alice: %+v", e)
			}
		}

		// Topic and display name.
		alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/state/m.room.topic/", map[string]any{"topic": "Oolong"}, nil)
		var topic struct {
			Topic string `json:"topic"`
		}
		bob.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/state/m.room.topic/", nil, &topic)
		if topic.Topic != "Oolong" {
			t.Errorf("topic = %q, want Oolong", topic.Topic)
		}
		bobBefore := bob.sync("", 0)
		alice.must("PUT", "/_matrix/client/v3/profile/"+alice.userID+"/displayname", map[string]any{"displayname": "Alice A."}, nil)
		// Bob's client learns of it with what it replaced, to render the change.
		renamed := bob.sync(bobBefore.NextBatch, 10000)
		var sawRename bool
		for _, e := range renamed.Rooms.Join[room].Timeline.Events {
			if e.Type == "m.room.member" && e.Content["displayname"] == "Alice A." {
				prev, _ := e.Unsigned["prev_content"].(map[string]any)
				sawRename = prev["displayname"] == "alice"
			}
		}
		if !sawRename {
			t.Errorf("bob's sync lacks alice's member event with prev_content: %+v", renamed.Rooms.Join[room].Timeline.Events)
		}
		var members struct {
			Joined map[string]struct {
				DisplayName *string `json:"display_name"`
			} `json:"joined"`
		}
		bob.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/joined_members", nil, &members)
		if len(members.Joined) != 2 {
			t.Errorf("joined_members = %v, want alice and bob", members.Joined)
		}
		if dn := members.Joined[alice.userID].DisplayName; dn == nil || *dn != "Alice A." {
			t.Errorf("alice's member event does not carry her new display name: %v", dn)
		}

		// History: everything both said, newest first.
		var msgs struct {
			Chunk []event `json:"chunk"`
			End   string  `json:"end"`
		}
		bob.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/messages?dir=b&limit=50", nil, &msgs)
		var bodies []string
		for _, e := range msgs.Chunk {
			if e.Type == "m.room.message" {
				bodies = append(bodies, fmt.Sprint(e.Content["body"]))
			}
		}
		if fmt.Sprint(bodies) != "[hi alice hello bob]" {
			t.Errorf("history = %v, want [hi alice hello bob]", bodies)
		}

		// Bob leaves: his next sync shows the room under leave, and he can
		// no longer send.
		before := bob.sync("", 0)
		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/leave", map[string]any{}, nil)
		left := bob.sync(before.NextBatch, 10000)
		if _, ok := left.Rooms.Leave[room]; !ok {
			t.Errorf("bob's sync after leaving lacks the leave section: %+v", left.Rooms)
		}
		var merr struct {
			ErrCode string `json:"errcode"`
		}
		if code := bob.do("PUT", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/send/m.room.message/t9", map[string]any{"body": "x"}, &merr); code != http.StatusForbidden || merr.ErrCode != "M_FORBIDDEN" {
			t.Errorf("send after leaving: %d %s, want 403 M_FORBIDDEN", code, merr.ErrCode)
		}
	})
}

func hasEvent(evs []event, typ, stateKey string) bool {
	for _, e := range evs {
		if e.Type == typ && e.StateKey != nil && *e.StateKey == stateKey {
			return true
		}
	}
	return false
}

func timelineHas(s syncResp, room, eventID string) bool {
	for _, e := range s.Rooms.Join[room].Timeline.Events {
		if e.EventID == eventID {
			return true
		}
	}
	return false
}
