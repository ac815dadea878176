package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
)

// A server's transactions are checked before anything is stored: forged
// signatures, senders the room does not allow, an origin that is not the
// signer, malformed bodies are refused; a replayed transaction changes
// nothing; an event whose content does not match its hash is kept only
// redacted.
func TestFederationRejectsForgedReplayedAndMalformedTransactions(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	backends := backendsUnderTest()
	a := startFedServer(t, backends[0])
	b := startFedServer(t, backends[len(backends)-1])
	alice, bob, roomID := publicRoomWithBob(t, a, b)
	last := alice.send(roomID, "last", "the head")
	bKey := b.signingKey(t)

	stateIDs := alice.stateIDs(roomID)
	version, _ := alice.stateContent(roomID, "m.room.create")["room_version"].(string)
	verImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version))
	// event builds an m.room.message from sender signed by B's name with
	// key (B's real key unless forged).
	event := func(sender, body string, key ed25519.PrivateKey) gomatrixserverlib.PDU {
		t.Helper()
		content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
		auth := []string{stateIDs["m.room.create|"], stateIDs["m.room.power_levels|"]}
		if id := stateIDs["m.room.member|"+sender]; id != "" {
			auth = append(auth, id)
		}
		pe := gomatrixserverlib.ProtoEvent{
			SenderID: sender, RoomID: roomID, Type: "m.room.message", Content: content,
			PrevEvents: []string{last}, AuthEvents: auth, Depth: 100,
		}
		ev, err := verImpl.NewEventBuilderFromProtoEvent(&pe).Build(time.Now(), b.name, bKey.KeyID, key)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	send := func(txnID string, body any) (int, map[string]any) {
		t.Helper()
		return fedDo(t, signedRequest(t, a.fedURL, "PUT", b.name, a.name, bKey, "/_matrix/federation/v1/send/"+txnID, body))
	}
	txn := func(pdus ...gomatrixserverlib.PDU) map[string]any {
		raw := make([]json.RawMessage, len(pdus))
		for i, p := range pdus {
			raw[i] = p.JSON()
		}
		return map[string]any{"origin": string(b.name), "origin_server_ts": time.Now().UnixMilli(), "pdus": raw}
	}
	pduError := func(body map[string]any, id string) (string, bool) {
		results, _ := body["pdus"].(map[string]any)
		r, ok := results[id].(map[string]any)
		if !ok {
			return "", false
		}
		e, _ := r["error"].(string)
		return e, true
	}
	eventCode := func(id string) (int, map[string]any) {
		var ev map[string]any
		code := alice.do("GET", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/event/"+url.PathEscape(id), nil, &ev)
		return code, ev
	}

	good := event(bob.userID, "a real one", bKey.Private)
	for _, attempt := range []string{"first", "replayed"} {
		code, body := send("t1", txn(good))
		if e, ok := pduError(body, good.EventID()); code != 200 || !ok || e != "" {
			t.Fatalf("%s: %d %v", attempt, code, body)
		}
	}
	if code, _ := eventCode(good.EventID()); code != 200 {
		t.Fatalf("the accepted event reads %d on A", code)
	}
	seen := 0
	for _, ev := range alice.history(roomID) {
		if ev.EventID == good.EventID() {
			seen++
		}
	}
	if seen != 1 {
		t.Fatalf("the replayed event is %d times in A's history", seen)
	}

	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged := event(bob.userID, "forged", otherKey)
	stranger := event("@mallory:"+string(b.name), "not a member", bKey.Private)
	code, body := send("t2", txn(forged, stranger))
	if code != 200 {
		t.Fatalf("a transaction with bad PDUs: %d %v (the transaction itself is fine)", code, body)
	}
	for name, ev := range map[string]gomatrixserverlib.PDU{"forged": forged, "not a member": stranger} {
		if e, ok := pduError(body, ev.EventID()); !ok || e == "" {
			t.Fatalf("%s: result %v", name, body)
		}
		if code, _ := eventCode(ev.EventID()); code != 404 {
			t.Fatalf("%s: the refused event reads %d on A, want 404", name, code)
		}
	}

	// A hash mismatch (content changed after signing) keeps only the
	// redacted event: the signature covers the redacted form.
	var tampered map[string]any
	_ = json.Unmarshal(event(bob.userID, "original", bKey.Private).JSON(), &tampered)
	tampered["content"] = map[string]any{"msgtype": "m.text", "body": "tampered"}
	raw, _ := json.Marshal(tampered)
	redacted, err := verImpl.NewEventFromUntrustedJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := send("t3", map[string]any{"origin": string(b.name), "pdus": []json.RawMessage{raw}}); code != 200 {
		t.Fatalf("tampered: %d %v", code, body)
	}
	if code, ev := eventCode(redacted.EventID()); code != 200 || fmt.Sprint(ev["content"]) != "map[]" {
		t.Fatalf("the tampered event reads %d %v on A, want it stored redacted", code, ev)
	}

	// A room whose server ACL denies the origin takes none of its events.
	alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(roomID)+"/state/m.room.server_acl/",
		map[string]any{"allow": []string{"*"}, "deny": []string{"127.0.0.1"}, "allow_ip_literals": true}, nil)
	denied := event(bob.userID, "after the ACL", bKey.Private)
	if code, body := send("t4", txn(denied)); code != 200 {
		t.Fatalf("denied: %d %v", code, body)
	} else if e, ok := pduError(body, denied.EventID()); !ok || e == "" {
		t.Fatalf("an event of a denied server: %v", body)
	}
	if code, _ := eventCode(denied.EventID()); code != 404 {
		t.Fatalf("an event of a denied server reads %d on A", code)
	}

	n := 0
	for name, tc := range map[string]struct {
		body any
		code int
	}{
		"origin is not the signer": {map[string]any{"origin": string(a.name), "pdus": []any{}}, 403},
		"pdus is not a list":       {map[string]any{"origin": string(b.name), "pdus": "nope"}, 400},
		"too many PDUs":            {map[string]any{"origin": string(b.name), "pdus": make([]map[string]any, 51)}, 400},
	} {
		n++
		if code, body := send(fmt.Sprintf("bad%d", n), tc.body); code != tc.code || body["errcode"] == nil {
			t.Fatalf("%s: %d %v, want %d with an errcode", name, code, body, tc.code)
		}
	}
}
