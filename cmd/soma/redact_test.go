package main

import (
	"net/http"
	"testing"
)

// TestRedactions: a sender redacts their own message and a moderator
// someone else's; a member without the power cannot; every read (event,
// messages, sync, state) then shows the content pruned with the redaction
// in unsigned.redacted_because; the room stays consistent.
func TestRedactions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob := srv.register("alice"), srv.register("bob")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)
		roomPath := "/_matrix/client/v3/rooms/" + pathEscape(room)

		bobs := bob.send(room, "b1", "bob's secret")
		alices := alice.send(room, "a1", "alice's typo")
		var topic struct {
			EventID string `json:"event_id"`
		}
		alice.must("PUT", roomPath+"/state/m.room.topic/", map[string]any{"topic": "to be removed"}, &topic)

		redact := func(c *client, target, txn string) (int, string) {
			var res struct {
				EventID string `json:"event_id"`
				Errcode string `json:"errcode"`
			}
			code := c.do("PUT", roomPath+"/redact/"+pathEscape(target)+"/"+txn, map[string]any{"reason": "cleanup"}, &res)
			if code == http.StatusOK {
				return code, res.EventID
			}
			return code, res.Errcode
		}
		// Bob (power 0) may not redact Alice's event; he may redact his own.
		if code, errcode := redact(bob, alices, "r1"); code != http.StatusForbidden || errcode != "M_FORBIDDEN" {
			t.Fatalf("bob redacting alice's event: %d %s, want 403 M_FORBIDDEN", code, errcode)
		}
		code, ownRedaction := redact(bob, bobs, "r2")
		if code != http.StatusOK {
			t.Fatalf("bob redacting his own event: %d %s", code, ownRedaction)
		}
		// A retry of the same transaction is the same redaction.
		if _, again := redact(bob, bobs, "r2"); again != ownRedaction {
			t.Fatalf("retried redaction gave %s, want %s", again, ownRedaction)
		}
		// Alice (room creator, power 100) redacts the topic.
		if code, id := redact(alice, topic.EventID, "r3"); code != http.StatusOK {
			t.Fatalf("alice redacting the topic: %d %s", code, id)
		}
		if code, errcode := redact(alice, "$nope", "r4"); code != http.StatusNotFound || errcode != "M_NOT_FOUND" {
			t.Fatalf("redacting an unknown event: %d %s, want 404 M_NOT_FOUND", code, errcode)
		}

		var ev event
		alice.must("GET", roomPath+"/event/"+pathEscape(bobs), nil, &ev)
		because, _ := ev.Unsigned["redacted_because"].(map[string]any)
		if len(ev.Content) != 0 || because["event_id"] != ownRedaction || because["sender"] != bob.userID {
			t.Fatalf("the redacted event = content %v, unsigned %v; want empty content, redacted_because %s", ev.Content, ev.Unsigned, ownRedaction)
		}
		var mine event
		alice.must("GET", roomPath+"/event/"+pathEscape(alices), nil, &mine)
		if mine.Content["body"] != "alice's typo" || mine.Unsigned["redacted_because"] != nil {
			t.Fatalf("an event nobody redacted changed: %+v", mine)
		}
		for _, e := range alice.history(room) {
			if e.EventID == bobs && (len(e.Content) != 0 || e.Unsigned["redacted_because"] == nil) {
				t.Fatalf("/messages shows the redacted event unredacted: %+v", e)
			}
		}
		s := bob.sync("", 0)
		for _, e := range s.Rooms.Join[room].Timeline.Events {
			if e.EventID == bobs && len(e.Content) != 0 {
				t.Fatalf("/sync shows the redacted event unredacted: %+v", e)
			}
		}
		var topicNow map[string]any
		if code := alice.do("GET", roomPath+"/state/m.room.topic/", nil, &topicNow); code != http.StatusOK || len(topicNow) != 0 {
			t.Fatalf("the redacted topic reads %d %v, want 200 {}", code, topicNow)
		}
		// The room goes on, and its stored history still verifies.
		alice.send(room, "a2", "after the redactions")
		srv.Stop()
		if out, err := runSomactl(t, dataDir, env, "verify-rooms", "-room", room, "-max-problems", "0"); err != nil {
			t.Fatalf("somactl verify-rooms after redactions: %v\n%s", err, out)
		}
	})
}
