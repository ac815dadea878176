package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/federation"
)

// TestFederationServesRoomEvents runs two servers, one per backend; each
// in turn serves its room's events to the other (/event, /state_ids,
// /state, /event_auth, /backfill, /get_missing_events), and the answers
// are checked against what the serving server's client API shows, with
// every event's hashes and signatures verified against its key.
func TestFederationServesRoomEvents(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	backends := backendsUnderTest()
	x := startFedServer(t, backends[0])
	y := startFedServer(t, backends[1])
	t.Run(backends[0].name+" serves", func(t *testing.T) { checkRoomEventReads(t, x, y) })
	t.Run(backends[1].name+" serves", func(t *testing.T) { checkRoomEventReads(t, y, x) })
}

// fedReader sends requests to a signed as b.
type fedReader struct {
	t    *testing.T
	a, b *fedServer
	key  *federation.SigningKey
}

func (r fedReader) get(uri string) (int, map[string]any) {
	r.t.Helper()
	return fedDo(r.t, signedGet(r.t, r.a.fedURL, r.b.name, r.a.name, r.key, uri))
}

func (r fedReader) post(uri string, body any) (int, map[string]any) {
	r.t.Helper()
	fr := fclient.NewFederationRequest("POST", r.b.name, r.a.name, uri)
	if err := fr.SetContent(body); err != nil {
		r.t.Fatal(err)
	}
	if err := fr.Sign(r.b.name, r.key.KeyID, r.key.Private); err != nil {
		r.t.Fatal(err)
	}
	req, err := fr.HTTPRequest()
	if err != nil {
		r.t.Fatal(err)
	}
	u, _ := url.Parse(r.a.fedURL + uri)
	req.URL, req.Host = u, u.Host
	return fedDo(r.t, req)
}

// must is get or post that fails the test unless the status is 200.
func (r fedReader) must(code int, body map[string]any) map[string]any {
	r.t.Helper()
	if code != http.StatusOK {
		r.t.Fatalf("status %d: %v", code, body)
	}
	return body
}

// pduChecker parses PDUs of one room version and checks them against the
// serving server's key.
type pduChecker struct {
	t        *testing.T
	version  gomatrixserverlib.IRoomVersion
	server   spec.ServerName
	key      *federation.SigningKey
	redacted map[string]bool
}

// check verifies one PDU (given as decoded JSON) and returns it parsed:
// its event ID is its reference hash, its content hash matches unless it
// is one of the redacted events, and the server's signature holds.
func (c pduChecker) check(v any) gomatrixserverlib.PDU {
	c.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	pdu, err := c.version.NewEventFromUntrustedJSON(raw)
	if err != nil {
		c.t.Fatalf("PDU %s: %v", raw, err)
	}
	var fields map[string]json.RawMessage
	var hashes struct {
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		c.t.Fatal(err)
	}
	_ = json.Unmarshal(fields["hashes"], &hashes)
	for _, k := range []string{"unsigned", "signatures", "hashes"} {
		delete(fields, k)
	}
	unhashed, _ := json.Marshal(fields)
	canonical, err := gomatrixserverlib.CanonicalJSON(unhashed)
	if err != nil {
		c.t.Fatal(err)
	}
	sum := sha256.Sum256(canonical)
	redacted := c.redacted[pdu.EventID()]
	if hashOK := base64.RawStdEncoding.EncodeToString(sum[:]) == hashes.SHA256; hashOK == redacted {
		c.t.Fatalf("event %s: content hash matches: %v, redacted: %v", pdu.EventID(), hashOK, redacted)
	}
	red, err := c.version.RedactEventJSON(raw)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := gomatrixserverlib.VerifyJSON(string(c.server), c.key.KeyID, c.key.Public(), red); err != nil {
		c.t.Fatalf("event %s: signature of %s: %v", pdu.EventID(), c.server, err)
	}
	return pdu
}

func (c pduChecker) checkAll(list any) []gomatrixserverlib.PDU {
	c.t.Helper()
	items, ok := list.([]any)
	if !ok {
		c.t.Fatalf("not a list of PDUs: %v", list)
	}
	out := make([]gomatrixserverlib.PDU, 0, len(items))
	for _, v := range items {
		out = append(out, c.check(v))
	}
	return out
}

func pduIDs(pdus []gomatrixserverlib.PDU) []string {
	out := make([]string, 0, len(pdus))
	for _, p := range pdus {
		out = append(out, p.EventID())
	}
	return out
}

func stringList(t *testing.T, v any) []string {
	t.Helper()
	items, ok := v.([]any)
	if !ok {
		t.Fatalf("not a list: %v", v)
	}
	out := make([]string, 0, len(items))
	for _, s := range items {
		out = append(out, s.(string))
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// stateBefore folds the state events of a timeline (oldest first) that
// come before the index'th event.
func stateBefore(timeline []event, index int) []string {
	state := map[string]string{}
	for _, ev := range timeline[:index] {
		if ev.StateKey != nil {
			state[ev.Type+"\x00"+*ev.StateKey] = ev.EventID
		}
	}
	out := make([]string, 0, len(state))
	for _, id := range state {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// checkAuthChainClosed checks that every auth event of the events is in
// the chain, and the chain's own auth events too.
func checkAuthChainClosed(t *testing.T, events, chain []gomatrixserverlib.PDU) {
	t.Helper()
	in := map[string]bool{}
	for _, p := range chain {
		in[p.EventID()] = true
	}
	for _, p := range append(slices.Clone(events), chain...) {
		for _, a := range p.AuthEventIDs() {
			if !in[a] {
				t.Fatalf("auth event %s of %s is not in the auth chain %v", a, p.EventID(), pduIDs(chain))
			}
		}
	}
}

func checkRoomEventReads(t *testing.T, a, b *fedServer) {
	alice := a.register("alice")
	alice.t = t
	roomID := alice.createRoom(map[string]any{
		"preset": "public_chat", "name": "Reads",
		"initial_state": []map[string]any{{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "world_readable"}}},
	})
	roomPath := "/_matrix/client/v3/rooms/" + pathEscape(roomID)
	m1 := alice.send(roomID, "m1", "one")
	m2 := alice.send(roomID, "m2", "two <b>&</b>") // HTML characters must reach B as signed
	alice.must("PUT", roomPath+"/state/m.room.topic/", map[string]any{"topic": "Reading"}, nil)
	m3 := alice.send(roomID, "m3", "three")
	var pl map[string]any
	alice.must("GET", roomPath+"/state/m.room.power_levels/", nil, &pl)
	pl["users"].(map[string]any)["@someone:"+string(b.name)] = 50
	alice.must("PUT", roomPath+"/state/m.room.power_levels/", pl, nil)
	alice.must("PUT", roomPath+"/state/m.room.name/", map[string]any{"name": "Reads, renamed"}, nil)
	secret := alice.send(roomID, "m4", "redact me")
	alice.must("PUT", roomPath+"/redact/"+pathEscape(secret)+"/r1", map[string]any{"reason": "oops"}, nil)
	bob := a.register("bob")
	bob.t = t
	bob.must("POST", roomPath+"/join", map[string]any{}, nil)
	last := bob.send(roomID, "m5", "five")
	private := alice.createRoom(map[string]any{"preset": "private_chat"})
	privMsg := alice.send(private, "p1", "private")

	// The room as alice's client sees it, oldest first.
	timeline := alice.history(roomID)
	slices.Reverse(timeline)
	index := map[string]int{}
	for i, ev := range timeline {
		index[ev.EventID] = i
	}
	for _, id := range []string{m1, m2, m3, secret, last} {
		if _, ok := index[id]; !ok {
			t.Fatalf("%s is not in the room's history", id)
		}
	}
	if timeline[0].Type != "m.room.create" {
		t.Fatalf("history does not start at the create event: %v", timeline[0])
	}
	var create struct {
		RoomVersion string `json:"room_version"`
	}
	alice.must("GET", roomPath+"/state/m.room.create/", nil, &create)
	if create.RoomVersion == "" {
		create.RoomVersion = "1"
	}
	version, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(create.RoomVersion))
	if err != nil {
		t.Fatal(err)
	}
	pc := pduChecker{t: t, version: version, server: a.name, key: a.signingKey(t), redacted: map[string]bool{secret: true}}
	fr := fedReader{t: t, a: a, b: b, key: b.signingKey(t)}
	roomURI := url.PathEscape(roomID)
	typeOf := func(id string) string { return timeline[index[id]].Type }

	t.Run("event", func(t *testing.T) {
		pc.t, fr.t = t, t
		body := fr.must(fr.get("/_matrix/federation/v1/event/" + url.PathEscape(m2)))
		if body["origin"] != string(a.name) || body["origin_server_ts"] == nil {
			t.Fatalf("not a transaction from %s: %v", a.name, body)
		}
		pdus := pc.checkAll(body["pdus"])
		if len(pdus) != 1 || pdus[0].EventID() != m2 || pdus[0].RoomID().String() != roomID {
			t.Fatalf("/event of %s = %v", m2, pduIDs(pdus))
		}
		var content map[string]any
		_ = json.Unmarshal(pdus[0].Content(), &content)
		if content["body"] != "two <b>&</b>" {
			t.Fatalf("content %s", pdus[0].Content())
		}
		// The redacted event goes out redacted, still signed.
		body = fr.must(fr.get("/_matrix/federation/v1/event/" + url.PathEscape(secret)))
		red := pc.check(body["pdus"].([]any)[0])
		if red.EventID() != secret || string(red.Content()) != "{}" {
			t.Fatalf("redacted event %s: %s", red.EventID(), red.Content())
		}
	})

	t.Run("state_ids and state before an event", func(t *testing.T) {
		pc.t, fr.t = t, t
		for _, at := range []string{m3, last, timeline[1].EventID, timeline[0].EventID} {
			want := stateBefore(timeline, index[at])
			ids := fr.must(fr.get("/_matrix/federation/v1/state_ids/" + roomURI + "?event_id=" + url.QueryEscape(at)))
			pduIDs1, chainIDs := stringList(t, ids["pdu_ids"]), stringList(t, ids["auth_chain_ids"])
			if !slices.Equal(sorted(pduIDs1), want) {
				t.Fatalf("state_ids at %s (%s): %v, want %v", at, typeOf(at), sorted(pduIDs1), want)
			}
			full := fr.must(fr.get("/_matrix/federation/v1/state/" + roomURI + "?event_id=" + url.QueryEscape(at)))
			state, chain := pc.checkAll(full["pdus"]), pc.checkAll(full["auth_chain"])
			if !slices.Equal(sorted(pduIDs(state)), want) || !slices.Equal(sorted(pduIDs(chain)), sorted(chainIDs)) {
				t.Fatalf("state at %s: %v and chain %v; state_ids said %v and %v", at, pduIDs(state), pduIDs(chain), want, chainIDs)
			}
			checkAuthChainClosed(t, state, chain)
			if at == timeline[0].EventID {
				if len(state) != 0 || len(chain) != 0 {
					t.Fatalf("state before the create event: %v, %v", pduIDs(state), pduIDs(chain))
				}
				continue
			}
			types := map[string]bool{}
			for _, p := range chain {
				types[p.Type()] = true
			}
			if at == timeline[1].EventID {
				continue // the state is the create event, which has no auth events
			}
			if !types["m.room.create"] || !types["m.room.member"] || !types["m.room.power_levels"] {
				t.Fatalf("auth chain at %s holds %v", at, types)
			}
		}
	})

	t.Run("event_auth", func(t *testing.T) {
		pc.t, fr.t = t, t
		body := fr.must(fr.get("/_matrix/federation/v1/event_auth/" + roomURI + "/" + url.PathEscape(last)))
		chain := pc.checkAll(body["auth_chain"])
		got := map[string]string{}
		for _, p := range chain {
			got[p.Type()+" "+*p.StateKey()] = p.EventID()
		}
		state := stateBefore(timeline, index[last])
		for _, want := range []string{"m.room.create ", "m.room.power_levels ", "m.room.join_rules ", "m.room.member " + bob.userID} {
			id, ok := got[want]
			if !ok || !slices.Contains(state, id) {
				t.Fatalf("auth chain of bob's message lacks the current %q: %v", want, got)
			}
		}
		lastEv := fr.must(fr.get("/_matrix/federation/v1/event/" + url.PathEscape(last)))
		checkAuthChainClosed(t, pc.checkAll(lastEv["pdus"]), chain)
		// Every event of the chain is the room's.
		for _, p := range chain {
			if _, ok := index[p.EventID()]; !ok {
				t.Fatalf("auth chain event %s is not in the room's history", p.EventID())
			}
		}
	})

	t.Run("backfill", func(t *testing.T) {
		pc.t, fr.t = t, t
		newestFirst := slices.Clone(timeline)
		slices.Reverse(newestFirst)
		var want []string
		for _, ev := range newestFirst {
			want = append(want, ev.EventID)
		}
		backfill := func(limit string, v ...string) []string {
			t.Helper()
			q := url.Values{"v": v}
			if limit != "" {
				q.Set("limit", limit)
			}
			body := fr.must(fr.get("/_matrix/federation/v1/backfill/" + roomURI + "?" + q.Encode()))
			if body["origin"] != string(a.name) {
				t.Fatalf("backfill: not a transaction from %s: %v", a.name, body)
			}
			return pduIDs(pc.checkAll(body["pdus"]))
		}
		if got := backfill("5", last); !slices.Equal(got, want[:5]) {
			t.Fatalf("backfill 5 from the last event = %v, want %v", got, want[:5])
		}
		if got := backfill("1000", last); !slices.Equal(got, want) {
			t.Fatalf("backfill everything = %v, want %v", got, want)
		}
		from := index[m3]
		if got, want := backfill("3", m3), want[len(want)-1-from:][:3]; !slices.Equal(got, want) {
			t.Fatalf("backfill from m3 = %v, want %v", got, want)
		}
		// Two v events (a comma-separated list too), unknown ones skipped.
		if got := backfill("2", m3+","+"$unknown", m2); !slices.Equal(got, []string{m3, timeline[index[m3]-1].EventID}) {
			t.Fatalf("backfill from m3 and m2 = %v", got)
		}
	})

	t.Run("get_missing_events", func(t *testing.T) {
		pc.t, fr.t = t, t
		missing := func(req map[string]any) []string {
			t.Helper()
			body := fr.must(fr.post("/_matrix/federation/v1/get_missing_events/"+roomURI, req))
			return pduIDs(pc.checkAll(body["events"]))
		}
		var between []string
		for _, ev := range timeline[index[m1]+1 : index[last]] {
			between = append(between, ev.EventID)
		}
		if got := missing(map[string]any{"earliest_events": []string{m1}, "latest_events": []string{last}, "limit": 100}); !slices.Equal(got, between) {
			t.Fatalf("missing between m1 and the last = %v, want %v", got, between)
		}
		if got := missing(map[string]any{"earliest_events": []string{m1}, "latest_events": []string{last}, "limit": 3}); !slices.Equal(got, between[len(between)-3:]) {
			t.Fatalf("3 missing before the last = %v, want %v", got, between[len(between)-3:])
		}
		// limit defaults to 10.
		if got := missing(map[string]any{"earliest_events": []string{}, "latest_events": []string{last}}); len(got) != min(10, index[last]) {
			t.Fatalf("missing with the default limit: %d events", len(got))
		}
		if got := missing(map[string]any{"earliest_events": []string{}, "latest_events": []string{last}, "min_depth": 1000}); len(got) != 0 {
			t.Fatalf("missing above min_depth 1000: %v", got)
		}
	})

	t.Run("timestamp_to_event", func(t *testing.T) {
		pc.t, fr.t = t, t
		near := func(ts int64, dir string) (string, int64) {
			t.Helper()
			body := fr.must(fr.get(fmt.Sprintf("/_matrix/federation/v1/timestamp_to_event/%s?ts=%d&dir=%s", roomURI, ts, dir)))
			id, _ := body["event_id"].(string)
			got, _ := body["origin_server_ts"].(float64)
			return id, int64(got)
		}
		tsOf := func(id string) int64 {
			t.Helper()
			body := fr.must(fr.get("/_matrix/federation/v1/event/" + url.PathEscape(id)))
			return int64(pc.checkAll(body["pdus"])[0].OriginServerTS())
		}
		if id, _ := near(0, "f"); id != timeline[0].EventID {
			t.Errorf("first event from 0 = %s, want the create event %s", id, timeline[0].EventID)
		}
		future := time.Now().Add(time.Hour).UnixMilli()
		if id, _ := near(future, "b"); id != last {
			t.Errorf("last event before an hour from now = %s, want %s", id, last)
		}
		at := tsOf(m3)
		if id, ts := near(at, "f"); ts != at || index[id] > index[m3] {
			t.Errorf("first event from m3's time %d = %s at %d", at, id, ts)
		}
		if id, ts := near(at, "b"); ts != at || index[id] < index[m3] {
			t.Errorf("last event until m3's time %d = %s at %d", at, id, ts)
		}
		for _, tc := range []struct {
			query   string
			status  int
			errcode string
		}{
			{fmt.Sprintf("ts=%d&dir=f", future), 404, "M_NOT_FOUND"},
			{"ts=1&dir=x", 400, "M_INVALID_PARAM"},
			{"ts=soon&dir=f", 400, "M_INVALID_PARAM"},
			{"dir=f", 400, "M_MISSING_PARAM"},
		} {
			if code, body := fr.get("/_matrix/federation/v1/timestamp_to_event/" + roomURI + "?" + tc.query); code != tc.status || body["errcode"] != tc.errcode {
				t.Errorf("timestamp_to_event?%s: %d %v, want %d %s", tc.query, code, body, tc.status, tc.errcode)
			}
		}
		if code, body := fr.get("/_matrix/federation/v1/timestamp_to_event/" + url.PathEscape(private) + "?ts=0&dir=f"); code != 403 || body["errcode"] != "M_FORBIDDEN" {
			t.Errorf("timestamp_to_event of the private room: %d %v", code, body)
		}
	})

	t.Run("history B could not see goes out redacted", func(t *testing.T) {
		pc.t, fr.t, alice.t = t, t, t
		room := alice.createRoom(map[string]any{
			"preset":        "public_chat",
			"initial_state": []map[string]any{{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "world_readable"}}},
		})
		path := "/_matrix/client/v3/rooms/" + pathEscape(room)
		seen := alice.send(room, "v1", "for everyone")
		alice.must("PUT", path+"/state/m.room.history_visibility/", map[string]any{"history_visibility": "joined"}, nil)
		hidden1 := alice.send(room, "v2", "members only")
		hidden2 := alice.send(room, "v3", "members only too")
		alice.must("PUT", path+"/state/m.room.history_visibility/", map[string]any{"history_visibility": "world_readable"}, nil)
		seenAgain := alice.send(room, "v4", "for everyone again")
		hc := pc
		hc.redacted = map[string]bool{hidden1: true, hidden2: true}
		var reopen string // the world_readable event: the state before it says joined
		tl := alice.history(room)
		for _, ev := range tl {
			if ev.Type == "m.room.history_visibility" && ev.Content["history_visibility"] == "world_readable" && reopen == "" {
				reopen = ev.EventID // newest first: the second change
			}
		}
		hc.redacted[reopen] = true
		bodies := func(list any) map[string]any {
			t.Helper()
			out := map[string]any{}
			for _, v := range list.([]any) {
				p := hc.check(v)
				var c map[string]any
				_ = json.Unmarshal(p.Content(), &c)
				out[p.EventID()] = c["body"]
			}
			return out
		}
		body := fr.must(fr.get("/_matrix/federation/v1/backfill/" + url.PathEscape(room) + "?limit=100&v=" + url.QueryEscape(seenAgain)))
		got := bodies(body["pdus"])
		if len(got) != len(tl) {
			t.Fatalf("backfill of the whole room: %d events, the client sees %d", len(got), len(tl))
		}
		want := map[string]any{seen: "for everyone", hidden1: nil, hidden2: nil, seenAgain: "for everyone again"}
		for id, b := range want {
			if got[id] != b {
				t.Errorf("backfill: %s has body %v, want %v", id, got[id], b)
			}
		}
		body = fr.must(fr.get("/_matrix/federation/v1/event/" + url.PathEscape(hidden1)))
		if got := bodies(body["pdus"]); len(got) != 1 || got[hidden1] != nil {
			t.Errorf("/event of a hidden message: %v", got)
		}
		body = fr.must(fr.post("/_matrix/federation/v1/get_missing_events/"+url.PathEscape(room), map[string]any{"earliest_events": []string{seen}, "latest_events": []string{seenAgain}}))
		if got := bodies(body["events"]); len(got) != 4 || got[hidden2] != nil {
			t.Errorf("get_missing_events across the hidden messages: %v", got)
		}
		// The state goes out whole: the visibility change of reopen is part of it.
		ids := fr.must(fr.get("/_matrix/federation/v1/state/" + url.PathEscape(room) + "?event_id=" + url.QueryEscape(seenAgain)))
		for _, v := range ids["pdus"].([]any) {
			p := pc.check(v) // fails on a redacted state event
			if p.EventID() == reopen {
				return
			}
		}
		t.Errorf("the state at the last message lacks %s", reopen)
	})

	t.Run("a server with a user in the room reads it, until the user leaves", func(t *testing.T) {
		pc.t, fr.t, alice.t = t, t, t
		room := alice.createRoom(map[string]any{"preset": "public_chat"}) // history shared
		msg := alice.send(room, "j1", "before B came")
		uri := "/_matrix/federation/v1/state_ids/" + url.PathEscape(room) + "?event_id=" + url.QueryEscape(msg)
		if code, body := fr.get(uri); code != 403 || body["errcode"] != "M_FORBIDDEN" {
			t.Fatalf("before B's user joined: %d %v", code, body)
		}
		visitor := b.register("visitor-" + string(a.name[len(a.name)-2:]))
		visitor.t = t
		visitor.must("POST", "/_matrix/client/v3/join/"+pathEscape(room)+"?server_name="+url.QueryEscape(string(a.name)), map[string]any{}, nil)
		fr.must(fr.get(uri))
		body := fr.must(fr.get("/_matrix/federation/v1/event/" + url.PathEscape(msg)))
		if p := pc.checkAll(body["pdus"]); len(p) != 1 || p[0].EventID() != msg {
			t.Fatalf("/event once joined: %v", pduIDs(p))
		}
		visitor.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/leave", map[string]any{}, nil)
		// The leave reaches A through B's sender, in its own time.
		memberPath := "/_matrix/client/v3/rooms/" + pathEscape(room) + "/state/m.room.member/" + url.PathEscape(visitor.userID)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			var m map[string]any
			if alice.do("GET", memberPath, nil, &m) == 200 && m["membership"] == "leave" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("A never saw %s leave", visitor.userID)
			}
		}
		if code, body := fr.get(uri); code != 403 || body["errcode"] != "M_FORBIDDEN" {
			t.Fatalf("after B's user left: %d %v", code, body)
		}
	})

	t.Run("bad requests and unknown events", func(t *testing.T) {
		fr.t, alice.t = t, t
		for _, tc := range []struct {
			name, uri string
			status    int
			errcode   string
		}{
			{"unknown event", "/_matrix/federation/v1/event/" + url.PathEscape("$nope"), 404, "M_NOT_FOUND"},
			{"malformed event ID", "/_matrix/federation/v1/event/nope", 400, "M_INVALID_PARAM"},
			{"state_ids of an unknown event", "/_matrix/federation/v1/state_ids/" + roomURI + "?event_id=%24nope", 404, "M_NOT_FOUND"},
			{"state of another room's event", "/_matrix/federation/v1/state/" + roomURI + "?event_id=" + url.QueryEscape(privMsg), 404, "M_NOT_FOUND"},
			{"event_auth of another room's event", "/_matrix/federation/v1/event_auth/" + roomURI + "/" + url.PathEscape(privMsg), 404, "M_NOT_FOUND"},
			{"state_ids without event_id", "/_matrix/federation/v1/state_ids/" + roomURI, 400, "M_MISSING_PARAM"},
			{"malformed room ID", "/_matrix/federation/v1/state_ids/nope?event_id=" + url.QueryEscape(m1), 400, "M_INVALID_PARAM"},
			{"unknown room", "/_matrix/federation/v1/state_ids/" + url.PathEscape("!nope:"+string(a.name)) + "?event_id=" + url.QueryEscape(m1), 404, "M_NOT_FOUND"},
			{"backfill without limit", "/_matrix/federation/v1/backfill/" + roomURI + "?v=" + url.QueryEscape(m1), 400, "M_MISSING_PARAM"},
			{"backfill without v", "/_matrix/federation/v1/backfill/" + roomURI + "?limit=10", 400, "M_MISSING_PARAM"},
			{"backfill with a bad limit", "/_matrix/federation/v1/backfill/" + roomURI + "?limit=many&v=" + url.QueryEscape(m1), 400, "M_INVALID_PARAM"},

			// The private room (history shared, no user of B in it) is refused.
			{"event of a private room", "/_matrix/federation/v1/event/" + url.PathEscape(privMsg), 403, "M_FORBIDDEN"},
			{"state_ids of a private room", "/_matrix/federation/v1/state_ids/" + url.PathEscape(private) + "?event_id=" + url.QueryEscape(privMsg), 403, "M_FORBIDDEN"},
			{"state of a private room", "/_matrix/federation/v1/state/" + url.PathEscape(private) + "?event_id=" + url.QueryEscape(privMsg), 403, "M_FORBIDDEN"},
			{"event_auth of a private room", "/_matrix/federation/v1/event_auth/" + url.PathEscape(private) + "/" + url.PathEscape(privMsg), 403, "M_FORBIDDEN"},
			{"backfill of a private room", "/_matrix/federation/v1/backfill/" + url.PathEscape(private) + "?limit=10&v=" + url.QueryEscape(privMsg), 403, "M_FORBIDDEN"},
		} {
			code, body := fr.get(tc.uri)
			if code != tc.status || body["errcode"] != tc.errcode {
				t.Errorf("%s: %d %v, want %d %s", tc.name, code, body, tc.status, tc.errcode)
			}
			if _, leaked := body["pdus"]; leaked {
				t.Errorf("%s: answered with events: %v", tc.name, body)
			}
		}
		for _, tc := range []struct {
			name    string
			room    string
			body    any
			status  int
			errcode string
		}{
			{"private room", private, map[string]any{"earliest_events": []string{}, "latest_events": []string{privMsg}}, 403, "M_FORBIDDEN"},
			{"no latest_events", roomID, map[string]any{"earliest_events": []string{}}, 400, "M_BAD_JSON"},
			{"latest_events not a list", roomID, map[string]any{"earliest_events": []string{}, "latest_events": "x"}, 400, "M_BAD_JSON"},
			{"negative limit", roomID, map[string]any{"earliest_events": []string{}, "latest_events": []string{last}, "limit": -1}, 400, "M_BAD_JSON"},
			{"too many latest_events", roomID, map[string]any{"earliest_events": []string{}, "latest_events": slices.Repeat([]string{last}, 101)}, 400, "M_BAD_JSON"},
		} {
			code, body := fr.post("/_matrix/federation/v1/get_missing_events/"+url.PathEscape(tc.room), tc.body)
			if code != tc.status || body["errcode"] != tc.errcode {
				t.Errorf("get_missing_events, %s: %d %v, want %d %s", tc.name, code, body, tc.status, tc.errcode)
			}
		}
		// The room's server ACL shuts B out, whatever the history visibility.
		alice.must("PUT", roomPath+"/state/m.room.server_acl/", map[string]any{"allow": []string{"*"}, "allow_ip_literals": false}, nil)
		for _, uri := range []string{
			"/_matrix/federation/v1/event/" + url.PathEscape(m1),
			"/_matrix/federation/v1/state_ids/" + roomURI + "?event_id=" + url.QueryEscape(m1),
			"/_matrix/federation/v1/backfill/" + roomURI + "?limit=10&v=" + url.QueryEscape(m1),
		} {
			if code, body := fr.get(uri); code != 403 || body["errcode"] != "M_FORBIDDEN" {
				t.Errorf("%s with an ACL denying IP literals: %d %v", uri, code, body)
			}
		}
		alice.must("PUT", roomPath+"/state/m.room.server_acl/", map[string]any{"allow": []string{"*"}}, nil)
		fr.must(fr.get("/_matrix/federation/v1/event/" + url.PathEscape(m1)))

		// Unsigned requests never get this far.
		code, body := fedGet(t, a.fedURL+"/_matrix/federation/v1/event/"+url.PathEscape(m1))
		if code != 401 || body["errcode"] != "M_UNAUTHORIZED" {
			t.Errorf("unsigned /event: %d %v", code, body)
		}
	})
}
