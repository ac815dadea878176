package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// streamSync is the part of a /sync response the account data and receipt
// tests read.
type streamSync struct {
	NextBatch   string `json:"next_batch"`
	AccountData struct {
		Events []accountDataEvent `json:"events"`
	} `json:"account_data"`
	Rooms struct {
		Join map[string]struct {
			AccountData struct {
				Events []accountDataEvent `json:"events"`
			} `json:"account_data"`
			Ephemeral struct {
				Events []struct {
					Type    string          `json:"type"`
					Content json.RawMessage `json:"content"`
				} `json:"events"`
			} `json:"ephemeral"`
		} `json:"join"`
	} `json:"rooms"`
}

type accountDataEvent struct {
	Type    string         `json:"type"`
	Content map[string]any `json:"content"`
}

func (c *client) streamSync(since string, timeoutMS int) streamSync {
	c.t.Helper()
	path := fmt.Sprintf("/_matrix/client/v3/sync?timeout=%d", timeoutMS)
	if since != "" {
		path += "&since=" + since
	}
	var s streamSync
	c.must("GET", path, nil, &s)
	return s
}

// receiptsIn returns a room's m.receipt content as event → type → users.
func (s streamSync) receiptsIn(room string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for _, ev := range s.Rooms.Join[room].Ephemeral.Events {
		if ev.Type != "m.receipt" {
			continue
		}
		var content map[string]map[string]map[string]json.RawMessage
		if err := json.Unmarshal(ev.Content, &content); err != nil {
			panic(fmt.Sprintf("m.receipt content %s: %v", ev.Content, err))
		}
		for eventID, byType := range content {
			for typ, users := range byType {
				if out[eventID] == nil {
					out[eventID] = map[string][]string{}
				}
				for u := range users {
					out[eventID][typ] = append(out[eventID][typ], u)
				}
			}
		}
	}
	return out
}

func findAccountData(evs []accountDataEvent, typ string) *accountDataEvent {
	for i := range evs {
		if evs[i].Type == typ {
			return &evs[i]
		}
	}
	return nil
}

// TestAccountDataTagsAndReceipts: account data (global and per room),
// tags, receipts and read markers are stored, refused when they should be,
// and reach /sync — initial and incremental, waking a long poll — with
// private receipts shown to their author only.
func TestAccountDataTagsAndReceipts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob, eve := srv.register("alice"), srv.register("bob"), srv.register("eve")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)
		first := alice.send(room, "t1", "one")
		second := alice.send(room, "t2", "two")

		user := func(c *client) string { return "/_matrix/client/v3/user/" + pathEscape(c.userID) }
		roomData := func(c *client) string { return user(c) + "/rooms/" + pathEscape(room) }
		bob.must("PUT", user(bob)+"/account_data/org.example.setting", map[string]any{"theme": "dark"}, nil)
		bob.must("PUT", roomData(bob)+"/account_data/org.example.room", map[string]any{"muted": true}, nil)
		bob.must("PUT", roomData(bob)+"/tags/u.work", map[string]any{"order": 0.5}, nil)
		bob.must("PUT", roomData(bob)+"/tags/m.favourite", map[string]any{}, nil)
		bob.must("DELETE", roomData(bob)+"/tags/m.favourite", nil, nil)

		var setting map[string]any
		bob.must("GET", user(bob)+"/account_data/org.example.setting", nil, &setting)
		if setting["theme"] != "dark" {
			t.Fatalf("global account data = %v", setting)
		}
		var tags struct {
			Tags map[string]map[string]any `json:"tags"`
		}
		bob.must("GET", roomData(bob)+"/tags", nil, &tags)
		if len(tags.Tags) != 1 || tags.Tags["u.work"]["order"] != 0.5 {
			t.Fatalf("tags = %+v, want u.work with order 0.5", tags)
		}

		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/receipt/m.read/"+pathEscape(first), map[string]any{}, nil)
		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/read_markers",
			map[string]any{"m.fully_read": first, "m.read.private": second}, nil)

		initial := bob.streamSync("", 0)
		if ad := findAccountData(initial.AccountData.Events, "org.example.setting"); ad == nil || ad.Content["theme"] != "dark" {
			t.Fatalf("initial sync's global account data = %+v", initial.AccountData.Events)
		}
		jr := initial.Rooms.Join[room]
		if ad := findAccountData(jr.AccountData.Events, "m.tag"); ad == nil {
			t.Fatalf("initial sync's room account data lacks m.tag: %+v", jr.AccountData.Events)
		}
		if ad := findAccountData(jr.AccountData.Events, "m.fully_read"); ad == nil || ad.Content["event_id"] != first {
			t.Fatalf("initial sync's m.fully_read = %+v, want %s", ad, first)
		}
		if r := initial.receiptsIn(room); len(r[first]["m.read"]) != 1 || len(r[second]["m.read.private"]) != 1 {
			t.Fatalf("bob's receipts in his initial sync = %v, want his m.read on the first and private one on the second", r)
		}

		// Alice long-polls; bob's public receipt wakes her, his private one
		// never reaches her.
		aliceStart := alice.streamSync("", 0)
		if r := aliceStart.receiptsIn(room); len(r[second]["m.read.private"]) != 0 || len(r[first]["m.read"]) != 1 {
			t.Fatalf("alice sees receipts %v: want bob's m.read only", r)
		}
		woke := make(chan streamSync, 1)
		start := time.Now()
		go func() { woke <- alice.streamSync(aliceStart.NextBatch, 45000) }()
		time.Sleep(200 * time.Millisecond) // let the long poll register
		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/receipt/m.read/"+pathEscape(second), map[string]any{"thread_id": "main"}, nil)
		got := <-woke
		// Far from the 45s timeout, with room for a slow (loaded, -race) request.
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("a receipt did not wake the long poll (returned after %v)", d)
		}
		if r := got.receiptsIn(room); len(r[second]["m.read"]) != 1 || len(r[first]) != 0 {
			t.Fatalf("alice's incremental receipts = %v, want only bob's new m.read", r)
		}

		// Bob's incremental sync after a new tag holds the changed m.tag only.
		bobNext := bob.streamSync(initial.NextBatch, 0)
		bob.must("PUT", roomData(bob)+"/tags/u.later", map[string]any{}, nil)
		after := bob.streamSync(bobNext.NextBatch, 10000)
		radata := after.Rooms.Join[room].AccountData.Events
		if len(radata) != 1 || radata[0].Type != "m.tag" || len(after.AccountData.Events) != 0 {
			t.Fatalf("bob's incremental account data = global %+v, room %+v; want the new m.tag only", after.AccountData.Events, radata)
		}

		for _, c := range []struct {
			who          *client
			method, path string
			body         any
			status       int
			code         string
		}{
			{alice, "GET", user(bob) + "/account_data/org.example.setting", nil, http.StatusForbidden, "M_FORBIDDEN"},
			{alice, "PUT", user(bob) + "/account_data/x", map[string]any{}, http.StatusForbidden, "M_FORBIDDEN"},
			{bob, "GET", user(bob) + "/account_data/org.example.none", nil, http.StatusNotFound, "M_NOT_FOUND"},
			{bob, "PUT", roomData(bob) + "/account_data/m.fully_read", map[string]any{"event_id": first}, http.StatusMethodNotAllowed, "M_BAD_JSON"},
			{bob, "PUT", user(bob) + "/account_data/x", "[1]", http.StatusBadRequest, "M_BAD_JSON"},
			{bob, "PUT", user(bob) + "/rooms/not-a-room/account_data/x", map[string]any{}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{bob, "PUT", roomData(bob) + "/tags/u.x", map[string]any{"order": 7}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{bob, "POST", "/_matrix/client/v3/rooms/" + pathEscape(room) + "/receipt/m.bogus/" + pathEscape(first), map[string]any{}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{bob, "POST", "/_matrix/client/v3/rooms/" + pathEscape(room) + "/receipt/m.read/" + pathEscape("$nope"), map[string]any{}, http.StatusNotFound, "M_NOT_FOUND"},
			{bob, "POST", "/_matrix/client/v3/rooms/" + pathEscape(room) + "/receipt/m.fully_read/" + pathEscape(first), map[string]any{"thread_id": "main"}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{eve, "POST", "/_matrix/client/v3/rooms/" + pathEscape(room) + "/receipt/m.read/" + pathEscape(first), map[string]any{}, http.StatusForbidden, "M_FORBIDDEN"},
			{eve, "POST", "/_matrix/client/v3/rooms/" + pathEscape(room) + "/read_markers", map[string]any{"m.fully_read": first}, http.StatusForbidden, "M_FORBIDDEN"},
		} {
			var e struct {
				Errcode string `json:"errcode"`
			}
			if got := c.who.do(c.method, c.path, c.body, &e); got != c.status || e.Errcode != c.code {
				t.Errorf("%s %s as %s: %d %s, want %d %s", c.method, c.path, c.who.userID, got, e.Errcode, c.status, c.code)
			}
		}
	})
}

// typingIn returns a room's m.typing user IDs, and whether there was one.
func (s streamSync) typingIn(room string) ([]string, bool) {
	for _, ev := range s.Rooms.Join[room].Ephemeral.Events {
		if ev.Type == "m.typing" {
			var content struct {
				UserIDs []string `json:"user_ids"`
			}
			if err := json.Unmarshal(ev.Content, &content); err != nil {
				panic(fmt.Sprintf("m.typing content %s: %v", ev.Content, err))
			}
			return content.UserIDs, true
		}
	}
	return nil, false
}

// TestTypingNotifications: a typing notification wakes the room's long
// polls and shows as m.typing; stopping and expiry show as an empty list.
// Typing is in memory only, so one backend suffices.
func TestTypingNotifications(t *testing.T) {
	srv := startServer(t, t.TempDir(), "SOMA_RATE_LIMITS_ENABLED=false")
	alice, bob, eve := srv.register("alice"), srv.register("bob"), srv.register("eve")
	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
	room := created.RoomID
	bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)
	typingPath := func(c *client) string {
		return "/_matrix/client/v3/rooms/" + pathEscape(room) + "/typing/" + pathEscape(c.userID)
	}

	base := bob.streamSync("", 0)
	if _, ok := base.typingIn(room); ok {
		t.Fatalf("nobody types yet, but the initial sync has m.typing: %+v", base.Rooms.Join[room].Ephemeral)
	}
	// waitTyping long-polls from since until bob's sync shows m.typing.
	waitTyping := func(since string, change func()) streamSync {
		t.Helper()
		woke := make(chan streamSync, 1)
		start := time.Now()
		go func() { woke <- bob.streamSync(since, 45000) }()
		time.Sleep(200 * time.Millisecond) // let the long poll register
		change()
		got := <-woke
		// Far from the 45s timeout, with room for a slow (loaded, -race) request.
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("a typing change did not wake the long poll (returned after %v)", d)
		}
		return got
	}
	typing := waitTyping(base.NextBatch, func() {
		alice.must("PUT", typingPath(alice), map[string]any{"typing": true, "timeout": 30000}, nil)
	})
	if users, ok := typing.typingIn(room); !ok || len(users) != 1 || users[0] != alice.userID {
		t.Fatalf("m.typing = %v (present %v), want [%s]", users, ok, alice.userID)
	}
	stopped := waitTyping(typing.NextBatch, func() {
		alice.must("PUT", typingPath(alice), map[string]any{"typing": false}, nil)
	})
	if users, ok := stopped.typingIn(room); !ok || len(users) != 0 {
		t.Fatalf("after stopping m.typing = %v (present %v), want []", users, ok)
	}
	// A notification that is never stopped expires after its timeout.
	alice.must("PUT", typingPath(alice), map[string]any{"typing": true, "timeout": 1000}, nil)
	deadline := time.Now().Add(20 * time.Second)
	since := stopped.NextBatch
	for {
		s := bob.streamSync(since, 5000)
		if users, ok := s.typingIn(room); ok && len(users) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the typing notification did not expire")
		}
		since = s.NextBatch
	}

	for _, c := range []struct {
		who    *client
		path   string
		body   any
		status int
		code   string
	}{
		{bob, typingPath(alice), map[string]any{"typing": true}, http.StatusForbidden, "M_FORBIDDEN"},
		{eve, typingPath(eve), map[string]any{"typing": true}, http.StatusForbidden, "M_FORBIDDEN"},
		{bob, typingPath(bob), map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{bob, typingPath(bob), map[string]any{"typing": "yes"}, http.StatusBadRequest, "M_BAD_JSON"},
	} {
		var e struct {
			Errcode string `json:"errcode"`
		}
		if got := c.who.do("PUT", c.path, c.body, &e); got != c.status || e.Errcode != c.code {
			t.Errorf("PUT %s as %s with %v: %d %s, want %d %s", c.path, c.who.userID, c.body, got, e.Errcode, c.status, c.code)
		}
	}
}

// TestUnreadNotificationCounts: a room's unread_notifications follow the
// reader's push rules from their read receipt on, and a receipt clears
// them.
func TestUnreadNotificationCounts(t *testing.T) {
	srv := startServer(t, t.TempDir(), "SOMA_RATE_LIMITS_ENABLED=false")
	alice, bob, carol := srv.register("alice"), srv.register("bob"), srv.register("carol")
	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
	room := created.RoomID
	for _, c := range []*client{bob, carol} {
		c.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)
	}
	counts := func() (int, int) {
		t.Helper()
		var s struct {
			Rooms struct {
				Join map[string]struct {
					Unread map[string]int `json:"unread_notifications"`
				} `json:"join"`
			} `json:"rooms"`
		}
		alice.must("GET", "/_matrix/client/v3/sync?timeout=0", nil, &s)
		u := s.Rooms.Join[room].Unread
		return u["notification_count"], u["highlight_count"]
	}
	if n, h := counts(); n != 0 || h != 0 {
		t.Fatalf("before any message: %d notifications, %d highlights", n, h)
	}
	bob.send(room, "b1", "hello everyone")
	carol.send(room, "c1", "alice, are you there?")
	bob.send(room, "b2", "and another")
	alice.send(room, "a1", "my own message does not count")
	if n, h := counts(); n != 3 || h != 1 {
		t.Fatalf("after three messages, one naming alice: %d notifications, %d highlights; want 3 and 1", n, h)
	}
	// The next sync counts on from where this one stopped.
	last := bob.send(room, "b3", "one more")
	if n, h := counts(); n != 4 || h != 1 {
		t.Fatalf("after a fourth message: %d notifications, %d highlights; want 4 and 1", n, h)
	}
	// Turning off .m.rule.message leaves the highlight only.
	alice.must("PUT", "/_matrix/client/v3/pushrules/global/underride/.m.rule.message/enabled", map[string]any{"enabled": false}, nil)
	if n, h := counts(); n != 1 || h != 1 {
		t.Fatalf("with .m.rule.message off: %d notifications, %d highlights; want 1 and 1", n, h)
	}
	alice.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/receipt/m.read/"+pathEscape(last), map[string]any{}, nil)
	if n, h := counts(); n != 0 || h != 0 {
		t.Fatalf("after reading: %d notifications, %d highlights; want none", n, h)
	}
}
