package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// presenceSync is the part of /sync the presence test reads.
type presenceSync struct {
	NextBatch string `json:"next_batch"`
	Presence  struct {
		Events []event `json:"events"`
	} `json:"presence"`
}

func (c *client) presenceSync(since string, timeoutMS int, setPresence string) presenceSync {
	c.t.Helper()
	path := fmt.Sprintf("/_matrix/client/v3/sync?timeout=%d", timeoutMS)
	if since != "" {
		path += "&since=" + since
	}
	if setPresence != "" {
		path += "&set_presence=" + setPresence
	}
	var s presenceSync
	c.must("GET", path, nil, &s)
	return s
}

// presenceOf returns the m.presence content the sync shows for user.
func (s presenceSync) presenceOf(user string) (map[string]any, bool) {
	for _, ev := range s.Presence.Events {
		if ev.Type == "m.presence" && ev.Sender == user {
			return ev.Content, true
		}
	}
	return nil, false
}

func TestPresence(t *testing.T) {
	srv := startServer(t, t.TempDir(), "SOMA_RATE_LIMITS_ENABLED=false")
	alice, bob, eve := srv.register("alice"), srv.register("bob"), srv.register("eve")
	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
	bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(created.RoomID), map[string]any{}, nil)
	alice.must("PUT", "/_matrix/client/v3/profile/"+pathEscape(alice.userID)+"/displayname", map[string]any{"displayname": "Alice"}, nil)
	statusPath := func(c *client) string { return "/_matrix/client/v3/presence/" + pathEscape(c.userID) + "/status" }

	// set_presence=offline: bob syncs without showing online.
	base := bob.presenceSync("", 0, "offline")
	if _, ok := base.presenceOf(bob.userID); ok {
		t.Fatalf("bob synced with set_presence=offline, yet his presence is shown: %+v", base.Presence.Events)
	}
	var st map[string]any
	bob.must("GET", statusPath(bob), nil, &st)
	if st["presence"] != "offline" {
		t.Fatalf("bob after set_presence=offline: %v", st)
	}

	// Alice's PUT wakes bob's long poll with m.presence.
	woke := make(chan presenceSync, 1)
	start := time.Now()
	go func() { woke <- bob.presenceSync(base.NextBatch, 45000, "offline") }()
	time.Sleep(200 * time.Millisecond) // let the long poll register
	alice.must("PUT", statusPath(alice), map[string]any{"presence": "online", "status_msg": "at lunch"}, nil)
	got := <-woke
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("a presence change did not wake the long poll (returned after %v)", d)
	}
	content, ok := got.presenceOf(alice.userID)
	if !ok || content["presence"] != "online" || content["status_msg"] != "at lunch" || content["currently_active"] != true || content["displayname"] != "Alice" {
		t.Fatalf("m.presence of alice = %v (present %v)", content, ok)
	}
	if _, ok := content["last_active_ago"].(float64); !ok {
		t.Fatalf("m.presence lacks last_active_ago: %v", content)
	}
	// Nothing changed since: an incremental sync shows no presence.
	if again := bob.presenceSync(got.NextBatch, 0, "offline"); len(again.Presence.Events) != 0 {
		t.Fatalf("unchanged presence shown again: %+v", again.Presence.Events)
	}
	bob.must("GET", statusPath(alice), nil, &st)
	if st["presence"] != "online" || st["status_msg"] != "at lunch" {
		t.Fatalf("GET alice's presence as bob: %v", st)
	}

	// Syncing marks a user online; room-mates see it, a stranger does not.
	eve.presenceSync("", 0, "")
	bob.presenceSync("", 0, "")
	initial := alice.presenceSync("", 0, "")
	if c, ok := initial.presenceOf(bob.userID); !ok || c["presence"] != "online" {
		t.Fatalf("alice's initial sync: bob's presence %v (present %v), want online", c, ok)
	}
	if c, ok := initial.presenceOf(alice.userID); !ok || c["presence"] != "online" {
		t.Fatalf("alice's initial sync: her own presence %v (present %v)", c, ok)
	}
	if _, ok := initial.presenceOf(eve.userID); ok {
		t.Fatalf("alice's initial sync shows eve, who shares no room: %+v", initial.Presence.Events)
	}
	// The filter's presence part applies.
	var filtered presenceSync
	alice.must("GET", "/_matrix/client/v3/sync?timeout=0&filter="+url.QueryEscape(`{"presence":{"not_senders":["`+bob.userID+`"]}}`), nil, &filtered)
	if _, ok := filtered.presenceOf(bob.userID); ok {
		t.Fatalf("a filter without bob shows bob's presence: %+v", filtered.Presence.Events)
	}
	if _, ok := filtered.presenceOf(alice.userID); !ok {
		t.Fatalf("a filter without bob hides alice's presence: %+v", filtered.Presence.Events)
	}
	// An old token (no presence serial) still parses.
	if code := alice.do("GET", "/_matrix/client/v3/sync?timeout=0&since=s1_0", nil, nil); code != http.StatusOK {
		t.Fatalf("sync with a token without a presence serial: %d", code)
	}

	for _, c := range []struct {
		who    *client
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{bob, "PUT", statusPath(alice), map[string]any{"presence": "online"}, http.StatusForbidden, "M_FORBIDDEN"},
		{bob, "PUT", statusPath(bob), map[string]any{"presence": "busy"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{bob, "PUT", statusPath(bob), map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{bob, "PUT", statusPath(bob), map[string]any{"presence": "online", "status_msg": 5}, http.StatusBadRequest, "M_BAD_JSON"},
		{eve, "GET", statusPath(alice), nil, http.StatusForbidden, "M_FORBIDDEN"},
		{alice, "GET", "/_matrix/client/v3/presence/" + pathEscape("@nobody:test.local") + "/status", nil, http.StatusNotFound, "M_NOT_FOUND"},
		{alice, "GET", "/_matrix/client/v3/sync?set_presence=away", nil, http.StatusBadRequest, "M_INVALID_PARAM"},
	} {
		var e struct {
			Errcode string `json:"errcode"`
		}
		if got := c.who.do(c.method, c.path, c.body, &e); got != c.status || e.Errcode != c.code {
			t.Errorf("%s %s as %s with %v: %d %s, want %d %s", c.method, c.path, c.who.userID, c.body, got, e.Errcode, c.status, c.code)
		}
	}
}

func TestPresenceDisabled(t *testing.T) {
	srv := startServer(t, t.TempDir(), "SOMA_RATE_LIMITS_ENABLED=false", "SOMA_PRESENCE_ENABLED=false")
	alice := srv.register("alice")
	statusPath := "/_matrix/client/v3/presence/" + pathEscape(alice.userID) + "/status"
	alice.must("PUT", statusPath, map[string]any{"presence": "online", "status_msg": "here"}, nil)
	var st map[string]any
	alice.must("GET", statusPath, nil, &st)
	if st["presence"] != "offline" || st["status_msg"] != nil {
		t.Fatalf("GET with presence disabled: %v, want offline", st)
	}
	if s := alice.presenceSync("", 0, ""); len(s.Presence.Events) != 0 {
		t.Fatalf("/sync with presence disabled shows %+v", s.Presence.Events)
	}
}
