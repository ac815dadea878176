package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// pushGateway is a push gateway on 127.0.0.1 that records what it is sent
// and answers some pushkeys as rejected.
type pushGateway struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      []gatewayNotification
	rejected map[string]bool
}

type gatewayNotification struct {
	EventID           string         `json:"event_id"`
	RoomID            string         `json:"room_id"`
	Type              string         `json:"type"`
	Sender            string         `json:"sender"`
	SenderDisplayName string         `json:"sender_display_name"`
	RoomName          string         `json:"room_name"`
	UserIsTarget      bool           `json:"user_is_target"`
	Prio              string         `json:"prio"`
	Content           map[string]any `json:"content"`
	Counts            map[string]int `json:"counts"`
	Devices           []struct {
		AppID     string         `json:"app_id"`
		Pushkey   string         `json:"pushkey"`
		PushkeyTS int64          `json:"pushkey_ts"`
		Data      map[string]any `json:"data"`
		Tweaks    map[string]any `json:"tweaks"`
	} `json:"devices"`
}

func newPushGateway(t *testing.T) *pushGateway {
	g := &pushGateway{rejected: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_matrix/push/v1/notify", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Notification gatewayNotification `json:"notification"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.got = append(g.got, body.Notification)
		rejected := []string{}
		for _, d := range body.Notification.Devices {
			if g.rejected[d.Pushkey] {
				rejected = append(rejected, d.Pushkey)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"rejected": rejected})
	})
	g.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(g.srv.Close)
	return g
}

func (g *pushGateway) url() string { return g.srv.URL + "/_matrix/push/v1/notify" }

func (g *pushGateway) reject(pushkey string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rejected[pushkey] = true
}

// received returns the notifications about eventID, by pushkey.
func (g *pushGateway) received(eventID string) map[string]gatewayNotification {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]gatewayNotification{}
	for _, n := range g.got {
		if n.EventID == eventID && len(n.Devices) == 1 {
			out[n.Devices[0].Pushkey] = n
		}
	}
	return out
}

func (g *pushGateway) eventIDs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, n := range g.got {
		out = append(out, n.EventID)
	}
	return out
}

func joinAll(roomID string, cs ...*client) {
	for _, c := range cs {
		c.must("POST", "/_matrix/client/v3/join/"+pathEscape(roomID), map[string]any{}, nil)
	}
}

// waitUntil polls cond until it holds, failing the test after a generous
// bound (a hang, not a timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type pushersList struct {
	Pushers []struct {
		Pushkey           string         `json:"pushkey"`
		Kind              string         `json:"kind"`
		AppID             string         `json:"app_id"`
		AppDisplayName    string         `json:"app_display_name"`
		DeviceDisplayName string         `json:"device_display_name"`
		ProfileTag        string         `json:"profile_tag"`
		Lang              string         `json:"lang"`
		Data              map[string]any `json:"data"`
	} `json:"pushers"`
}

func (c *client) pushkeys() []string {
	c.t.Helper()
	var l pushersList
	c.must("GET", "/_matrix/client/v3/pushers", nil, &l)
	keys := []string{}
	for _, p := range l.Pushers {
		keys = append(keys, p.Pushkey)
	}
	slices.Sort(keys)
	return keys
}

func pusherBody(url, pushkey string, data map[string]any) map[string]any {
	d := map[string]any{"url": url}
	for k, v := range data {
		d[k] = v
	}
	return map[string]any{
		"kind": "http", "app_id": "org.example.app", "pushkey": pushkey, "app_display_name": "Example",
		"device_display_name": "Phone", "profile_tag": "tag1", "lang": "en", "data": d,
	}
}

// TestPushNotificationsReachTheGateway: a pusher gets one notify request
// per event that notifies its user, with the event's fields (or only its
// ID), none for the user's own events; a logged-out device's pusher goes,
// and a pushkey the gateway rejects loses its pusher.
func TestPushNotificationsReachTheGateway(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		gw := newPushGateway(t)
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob, carol, dave := srv.register("alice"), srv.register("bob"), srv.register("carol"), srv.register("dave")
		bobPhone := srv.login("bob")
		// Three members: in a room of two, .m.rule.room_one_to_one would
		// give every message a sound.
		room := alice.createRoom(map[string]any{"preset": "public_chat", "name": "Tea"})
		joinAll(room, bob, carol)

		bob.must("POST", "/_matrix/client/v3/pushers/set", pusherBody(gw.url(), "full-key", map[string]any{"extra": "kept"}), nil)
		bobPhone.must("POST", "/_matrix/client/v3/pushers/set",
			pusherBody(gw.url(), "id-only-key", map[string]any{"format": "event_id_only"}), nil)
		var l pushersList
		bob.must("GET", "/_matrix/client/v3/pushers", nil, &l)
		if len(l.Pushers) != 2 || l.Pushers[0].Kind != "http" || l.Pushers[0].AppDisplayName != "Example" ||
			l.Pushers[0].Lang != "en" || l.Pushers[0].ProfileTag != "tag1" || l.Pushers[0].Data["url"] != gw.url() {
			t.Fatalf("GET /pushers = %+v", l)
		}

		plain := alice.send(room, "a1", "hello everyone")
		own := bob.send(room, "b1", "my own message")
		mention := alice.send(room, "a2", "bob: are you there?")
		waitUntil(t, "both pushers got both of alice's messages", func() bool {
			return len(gw.received(plain)) == 2 && len(gw.received(mention)) == 2
		})
		full := gw.received(plain)["full-key"]
		d := full.Devices[0]
		if full.RoomID != room || full.Type != "m.room.message" || full.Sender != alice.userID ||
			full.SenderDisplayName != "alice" || full.RoomName != "Tea" || full.Content["body"] != "hello everyone" ||
			full.Prio != "low" || full.Counts["unread"] < 1 {
			t.Errorf("full notification = %+v", full)
		}
		if d.AppID != "org.example.app" || d.PushkeyTS <= 0 || d.PushkeyTS > time.Now().Unix() ||
			d.Data["extra"] != "kept" || d.Data["url"] != nil {
			t.Errorf("device = %+v, want the pusher's data without url and pushkey_ts in seconds", d)
		}
		idOnly := gw.received(plain)["id-only-key"]
		if idOnly.RoomID != room || idOnly.Type != "" || idOnly.Sender != "" || idOnly.Content != nil || idOnly.Counts == nil {
			t.Errorf("event_id_only notification = %+v, want the IDs and counts only", idOnly)
		}
		hl := gw.received(mention)["full-key"]
		if tw := hl.Devices[0].Tweaks; tw["highlight"] != true || tw["sound"] != "default" || hl.Prio != "high" {
			t.Errorf("mention: prio %q, tweaks %v; want high with highlight and sound", hl.Prio, tw)
		}

		// An invite is pushed to the invitee, who is no member yet.
		dave.must("POST", "/_matrix/client/v3/pushers/set", pusherBody(gw.url(), "dave-key", nil), nil)
		alice.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/invite", map[string]any{"user_id": dave.userID}, nil)
		var invite gatewayNotification
		waitUntil(t, "dave's pusher got the invite", func() bool {
			gw.mu.Lock()
			defer gw.mu.Unlock()
			for _, n := range gw.got {
				if len(n.Devices) == 1 && n.Devices[0].Pushkey == "dave-key" {
					invite = n
					return true
				}
			}
			return false
		})
		if invite.Type != "m.room.member" || !invite.UserIsTarget || invite.Sender != alice.userID || invite.Content["membership"] != "invite" {
			t.Errorf("dave's invite notification = %+v", invite)
		}

		// Logging the phone out takes its pusher with it.
		bobPhone.must("POST", "/_matrix/client/v3/logout", map[string]any{}, nil)
		if got := bob.pushkeys(); !slices.Equal(got, []string{"full-key"}) {
			t.Fatalf("after the phone logged out bob's pushers are %v", got)
		}

		// A pushkey the gateway rejects loses its pusher.
		gw.reject("full-key")
		last := alice.send(room, "a3", "anyone?")
		waitUntil(t, "the rejected pusher is deleted", func() bool { return len(bob.pushkeys()) == 0 })
		// Only bob's pusher: dave is only invited, the phone logged out.
		if n := gw.received(last); len(n) != 1 || n["full-key"].EventID != last {
			t.Fatalf("the last message reached the gateway as %v", n)
		}
		for _, id := range gw.eventIDs() {
			if id == own {
				t.Fatalf("bob's own message %s was pushed to him", own)
			}
		}
	})
}

type notificationsResp struct {
	NextToken     string `json:"next_token"`
	Notifications []struct {
		Actions []any  `json:"actions"`
		Event   event  `json:"event"`
		Read    bool   `json:"read"`
		RoomID  string `json:"room_id"`
		TS      int64  `json:"ts"`
	} `json:"notifications"`
}

// TestNotificationsListWhatNotified: GET /notifications lists the events
// that notified the user, newest first, read once a receipt covers them;
// only=highlight and paging work.
func TestNotificationsListWhatNotified(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob := srv.register("alice"), srv.register("bob")
		room := alice.createRoom(map[string]any{"preset": "public_chat"})
		alice.send(room, "early", "bob is not here yet") // before bob joins: never his
		joinAll(room, bob)
		var sent []string // alice's messages, oldest first
		for i := range 5 {
			body := fmt.Sprintf("message %d", i)
			if i == 2 {
				body = "bob, look at this"
			}
			sent = append(sent, alice.send(room, fmt.Sprintf("a%d", i), body))
			bob.send(room, fmt.Sprintf("b%d", i), "bob's own")
		}
		newestFirst := slices.Clone(sent)
		slices.Reverse(newestFirst)

		list := func(query string) notificationsResp {
			t.Helper()
			var r notificationsResp
			bob.must("GET", "/_matrix/client/v3/notifications"+query, nil, &r)
			return r
		}
		ids := func(r notificationsResp) []string {
			out := []string{}
			for _, n := range r.Notifications {
				out = append(out, n.Event.EventID)
			}
			return out
		}
		all := list("")
		if got := ids(all); !slices.Equal(got, newestFirst) {
			t.Fatalf("notifications = %v, want alice's messages newest first %v", got, newestFirst)
		}
		for _, n := range all.Notifications {
			if n.Read || n.RoomID != room || n.TS <= 0 || !slices.Contains(n.Actions, any("notify")) || n.Event.Sender != alice.userID {
				t.Fatalf("notification = %+v, want unread, notify, in the room", n)
			}
		}
		if all.NextToken != "" {
			t.Errorf("the whole list came with next_token %q", all.NextToken)
		}
		if got := ids(list("?only=highlight")); !slices.Equal(got, []string{sent[2]}) {
			t.Fatalf("only=highlight = %v, want the mention %s", got, sent[2])
		}

		// Pages of two follow each other to the end.
		var paged []string
		for token, pages := "", 0; ; pages++ {
			q := "?limit=2"
			if token != "" {
				q += "&from=" + token
			}
			r := list(q)
			if len(r.Notifications) > 2 || pages > 5 {
				t.Fatalf("page %d: %d notifications", pages, len(r.Notifications))
			}
			paged = append(paged, ids(r)...)
			if r.NextToken == "" {
				break
			}
			token = r.NextToken
		}
		if !slices.Equal(paged, newestFirst) {
			t.Fatalf("paged notifications = %v, want %v", paged, newestFirst)
		}

		// A receipt on the third message marks it and the older ones read.
		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/receipt/m.read/"+pathEscape(sent[2]), map[string]any{}, nil)
		for _, n := range list("").Notifications {
			wantRead := slices.Index(sent, n.Event.EventID) <= 2
			if n.Read != wantRead {
				t.Errorf("%s read = %v, want %v", n.Event.EventID, n.Read, wantRead)
			}
		}
	})
}

// TestPushersRefuseBadInput: bad pusher bodies and queries get the spec's
// errors, and kind null deletes.
func TestPushersRefuseBadInput(t *testing.T) {
	srv := startServer(t, t.TempDir(), "SOMA_RATE_LIMITS_ENABLED=false")
	bob := srv.register("bob")
	const gwURL = "https://push.example.org/_matrix/push/v1/notify"
	with := func(key string, v any) map[string]any {
		b := pusherBody(gwURL, "k", nil)
		if v == nil {
			delete(b, key)
		} else {
			b[key] = v
		}
		return b
	}
	for _, c := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"not JSON", "{nope", 400, "M_NOT_JSON"},
		{"no kind", with("kind", nil), 400, "M_MISSING_PARAM"},
		{"no app_id", with("app_id", nil), 400, "M_MISSING_PARAM"},
		{"no lang", with("lang", nil), 400, "M_MISSING_PARAM"},
		{"no data", with("data", nil), 400, "M_MISSING_PARAM"},
		{"kind not a string", with("kind", 5), 400, "M_BAD_JSON"},
		{"pushkey not a string", with("pushkey", true), 400, "M_BAD_JSON"},
		{"data not an object", with("data", "x"), 400, "M_BAD_JSON"},
		{"append not a boolean", with("append", "yes"), 400, "M_BAD_JSON"},
		{"no url", with("data", map[string]any{"format": "event_id_only"}), 400, "M_MISSING_PARAM"},
		{"url not a string", with("data", map[string]any{"url": 1}), 400, "M_BAD_JSON"},
		{"ftp url", with("data", map[string]any{"url": "ftp://push.example.org/_matrix/push/v1/notify"}), 400, "M_INVALID_PARAM"},
		{"wrong path", with("data", map[string]any{"url": "https://push.example.org/notify"}), 400, "M_INVALID_PARAM"},
		{"unknown kind", with("kind", "carrier-pigeon"), 400, "M_INVALID_PARAM"},
		{"email kind", with("kind", "email"), 400, "M_INVALID_PARAM"},
		{"long app_id", with("app_id", string(make([]byte, 65))), 400, "M_INVALID_PARAM"},
	} {
		var e struct {
			Errcode string `json:"errcode"`
		}
		if got := bob.do("POST", "/_matrix/client/v3/pushers/set", c.body, &e); got != c.status || e.Errcode != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, got, e.Errcode, c.status, c.code)
		}
	}
	if got := bob.pushkeys(); len(got) != 0 {
		t.Fatalf("refused bodies left pushers %v", got)
	}
	bob.must("POST", "/_matrix/client/v3/pushers/set", pusherBody(gwURL, "k", nil), nil)
	bob.must("POST", "/_matrix/client/v3/pushers/set", map[string]any{"kind": nil, "app_id": "org.example.app", "pushkey": "k"}, nil)
	if got := bob.pushkeys(); len(got) != 0 {
		t.Fatalf("kind null left pushers %v", got)
	}

	anon := srv.anonymous()
	for _, c := range []struct{ method, path string }{
		{"GET", "/_matrix/client/v3/pushers"},
		{"POST", "/_matrix/client/v3/pushers/set"},
		{"GET", "/_matrix/client/v3/notifications"},
	} {
		var e struct {
			Errcode string `json:"errcode"`
		}
		if got := anon.do(c.method, c.path, map[string]any{}, &e); got != 401 || e.Errcode != "M_MISSING_TOKEN" {
			t.Errorf("%s %s without a token: %d %s", c.method, c.path, got, e.Errcode)
		}
	}
	for _, q := range []string{"?limit=abc", "?limit=0", "?from=xyz"} {
		var e struct {
			Errcode string `json:"errcode"`
		}
		if got := bob.do("GET", "/_matrix/client/v3/notifications"+q, nil, &e); got != 400 || e.Errcode != "M_INVALID_PARAM" {
			t.Errorf("/notifications%s: %d %s, want 400 M_INVALID_PARAM", q, got, e.Errcode)
		}
	}
}
