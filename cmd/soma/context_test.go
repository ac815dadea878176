package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

type contextResp struct {
	Start        string  `json:"start"`
	End          string  `json:"end"`
	Event        event   `json:"event"`
	EventsBefore []event `json:"events_before"`
	EventsAfter  []event `json:"events_after"`
	State        []event `json:"state"`
	Errcode      string  `json:"errcode"`
}

type pageResp struct {
	Chunk     []event `json:"chunk"`
	NextBatch string  `json:"next_batch"`
	PrevBatch string  `json:"prev_batch"`
	End       string  `json:"end"`
	Errcode   string  `json:"errcode"`
}

func ids(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

func hasState(state []event, typ string) *event {
	for i := range state {
		if state[i].Type == typ {
			return &state[i]
		}
	}
	return nil
}

// TestEventContext: /context returns the events around an event, the state
// at the last event returned and tokens /messages goes on from; events the
// caller may not see are 404 like unknown ones.
func TestEventContext(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob, carol := srv.register("alice"), srv.register("bob"), srv.register("carol")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID
		roomPath := "/_matrix/client/v3/rooms/" + pathEscape(room)
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)
		m1, m2, m3, m4 := alice.send(room, "c1", "one"), bob.send(room, "c2", "two"), alice.send(room, "c3", "three"), bob.send(room, "c4", "four")
		var topic struct {
			EventID string `json:"event_id"`
		}
		alice.must("PUT", roomPath+"/state/m.room.topic/", map[string]any{"topic": "later"}, &topic)
		m5 := alice.send(room, "c5", "five")

		var wide contextResp
		bob.must("GET", roomPath+"/context/"+pathEscape(m3)+"?limit=4", nil, &wide)
		if wide.Event.EventID != m3 || wide.Event.Content["body"] != "three" {
			t.Fatalf("context event = %+v, want %s", wide.Event, m3)
		}
		if got, want := ids(wide.EventsBefore), []string{m2, m1}; !slices.Equal(got, want) {
			t.Fatalf("events_before = %v, want %v (newest first)", got, want)
		}
		if got, want := ids(wide.EventsAfter), []string{m4, topic.EventID}; !slices.Equal(got, want) {
			t.Fatalf("events_after = %v, want %v", got, want)
		}
		// The state at the last event returned includes the topic it set.
		if tp := hasState(wide.State, "m.room.topic"); tp == nil || tp.EventID != topic.EventID {
			t.Fatalf("state at the topic change lacks it: %v", wide.State)
		}
		if hasState(wide.State, "m.room.create") == nil || hasState(wide.State, "m.room.member") == nil {
			t.Fatalf("state lacks the create or member events: %v", wide.State)
		}

		var narrow contextResp
		bob.must("GET", roomPath+"/context/"+pathEscape(m3)+"?limit=2", nil, &narrow)
		if !slices.Equal(ids(narrow.EventsBefore), []string{m2}) || !slices.Equal(ids(narrow.EventsAfter), []string{m4}) {
			t.Fatalf("limit 2: before %v after %v, want [%s] [%s]", ids(narrow.EventsBefore), ids(narrow.EventsAfter), m2, m4)
		}
		if hasState(narrow.State, "m.room.topic") != nil {
			t.Fatal("the state at m4 holds a topic set after it")
		}
		// The tokens go on with /messages.
		var back, fwd pageResp
		bob.must("GET", roomPath+"/messages?dir=b&limit=1&from="+narrow.Start, nil, &back)
		bob.must("GET", roomPath+"/messages?dir=f&limit=2&from="+narrow.End, nil, &fwd)
		if !slices.Equal(ids(back.Chunk), []string{m1}) || !slices.Equal(ids(fwd.Chunk), []string{topic.EventID, m5}) {
			t.Fatalf("/messages from start %v, from end %v; want [%s] and [%s %s]", ids(back.Chunk), ids(fwd.Chunk), m1, topic.EventID, m5)
		}
		// A filter narrows the events around, not the event.
		var filtered contextResp
		bob.must("GET", roomPath+"/context/"+pathEscape(m3)+"?limit=10&filter="+url.QueryEscape(`{"senders":["`+bob.userID+`"],"types":["m.room.message"]}`), nil, &filtered)
		if filtered.Event.EventID != m3 || !slices.Equal(ids(filtered.EventsBefore), []string{m2}) || !slices.Equal(ids(filtered.EventsAfter), []string{m4}) {
			t.Fatalf("filtered context: event %s before %v after %v", filtered.Event.EventID, ids(filtered.EventsBefore), ids(filtered.EventsAfter))
		}

		// The filter applies to the state; lazy loading keeps the members
		// the events need.
		var lazy contextResp
		alice.must("GET", roomPath+"/context/"+pathEscape(m1)+"?limit=0&filter="+url.QueryEscape(`{"lazy_load_members":true,"not_types":["m.room.join_rules"]}`), nil, &lazy)
		if hasState(lazy.State, "m.room.join_rules") != nil || hasState(lazy.State, "m.room.create") == nil {
			t.Fatalf("filtered state = %v: want no join rules, the create event kept", lazy.State)
		}
		members := map[string]bool{}
		for _, e := range lazy.State {
			if e.Type == "m.room.member" {
				members[*e.StateKey] = true
			}
		}
		if !members[alice.userID] || members[bob.userID] || len(lazy.EventsBefore)+len(lazy.EventsAfter) != 0 {
			t.Fatalf("lazy-loaded members at %s with limit 0 = %v, want only alice's", m1, members)
		}

		var res contextResp
		if code := bob.do("GET", roomPath+"/context/"+pathEscape("$unknown:x"), nil, &res); code != http.StatusNotFound || res.Errcode != "M_NOT_FOUND" {
			t.Fatalf("context of an unknown event: %d %s, want 404 M_NOT_FOUND", code, res.Errcode)
		}
		if code := carol.do("GET", roomPath+"/context/"+pathEscape(m3), nil, &res); code != http.StatusForbidden {
			t.Fatalf("context for a non-member: %d, want 403", code)
		}

		// History from before joining is invisible under "joined".
		var private struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "public_chat",
			"initial_state": []map[string]any{{
				"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"},
			}},
		}, &private)
		privPath := "/_matrix/client/v3/rooms/" + pathEscape(private.RoomID)
		secret := alice.send(private.RoomID, "s1", "before carol")
		carol.must("POST", "/_matrix/client/v3/join/"+pathEscape(private.RoomID), map[string]any{}, nil)
		seen := alice.send(private.RoomID, "s2", "after carol")
		if code := carol.do("GET", privPath+"/context/"+pathEscape(secret), nil, &res); code != http.StatusNotFound || res.Errcode != "M_NOT_FOUND" {
			t.Fatalf("context of an event before joining: %d %s, want 404 M_NOT_FOUND", code, res.Errcode)
		}
		var ok contextResp
		carol.must("GET", privPath+"/context/"+pathEscape(seen)+"?limit=10", nil, &ok)
		if slices.Contains(ids(ok.EventsBefore), secret) || len(ok.EventsBefore) == 0 {
			t.Fatalf("events_before for carol = %v: want her join, never %s", ids(ok.EventsBefore), secret)
		}
		var page pageResp
		if code := carol.do("GET", "/_matrix/client/v1/rooms/"+pathEscape(private.RoomID)+"/relations/"+pathEscape(secret), nil, &page); code != http.StatusNotFound {
			t.Fatalf("relations of an invisible event: %d, want 404", code)
		}
		var tsRes struct {
			EventID string `json:"event_id"`
			TS      int64  `json:"origin_server_ts"`
			Errcode string `json:"errcode"`
		}
		carol.must("GET", "/_matrix/client/v1/rooms/"+pathEscape(private.RoomID)+"/timestamp_to_event?dir=b&ts=9999999999999", nil, &tsRes)
		if tsRes.EventID != seen {
			t.Fatalf("timestamp_to_event for carol = %s, want %s (the latest she may see)", tsRes.EventID, seen)
		}
	})
}

// TestRelationsThreadsAndTimestamps: reactions, edits and thread replies
// are listed by /relations with rel and event type filters and pages,
// /threads lists thread roots with their bundled summary, and
// timestamp_to_event finds events in both directions.
func TestRelationsThreadsAndTimestamps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_RATE_LIMITS_ENABLED=false")...)
		alice, bob := srv.register("alice"), srv.register("bob")
		var created struct {
			RoomID string `json:"room_id"`
		}
		alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &created)
		room := created.RoomID
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(room), map[string]any{}, nil)
		v3 := "/_matrix/client/v3/rooms/" + pathEscape(room)
		v1 := "/_matrix/client/v1/rooms/" + pathEscape(room)
		sendRaw := func(c *client, typ, txn string, content map[string]any) string {
			var res struct {
				EventID string `json:"event_id"`
			}
			c.must("PUT", v3+"/send/"+typ+"/"+txn, content, &res)
			return res.EventID
		}
		rel := func(relType, parent string, extra map[string]any) map[string]any {
			r := map[string]any{"rel_type": relType, "event_id": parent}
			for k, v := range extra {
				r[k] = v
			}
			return r
		}

		root := alice.send(room, "r", "root")
		react1 := sendRaw(alice, "m.reaction", "x1", map[string]any{"m.relates_to": rel("m.annotation", root, map[string]any{"key": "👍"})})
		edit := sendRaw(alice, "m.room.message", "x2", map[string]any{
			"msgtype": "m.text", "body": "* root!", "m.new_content": map[string]any{"msgtype": "m.text", "body": "root!"},
			"m.relates_to": rel("m.replace", root, nil),
		})
		react2 := sendRaw(bob, "m.reaction", "x3", map[string]any{"m.relates_to": rel("m.annotation", root, map[string]any{"key": "🎉"})})

		var page pageResp
		alice.must("GET", v1+"/relations/"+pathEscape(root), nil, &page)
		if got, want := ids(page.Chunk), []string{react2, edit, react1}; !slices.Equal(got, want) {
			t.Fatalf("relations = %v, want %v (newest first)", got, want)
		}
		// Pages of 2, backwards then forwards.
		alice.must("GET", v1+"/relations/"+pathEscape(root)+"?limit=2", nil, &page)
		if !slices.Equal(ids(page.Chunk), []string{react2, edit}) || page.NextBatch == "" {
			t.Fatalf("first page = %v next %q", ids(page.Chunk), page.NextBatch)
		}
		var page2 pageResp
		alice.must("GET", v1+"/relations/"+pathEscape(root)+"?limit=2&from="+page.NextBatch, nil, &page2)
		if !slices.Equal(ids(page2.Chunk), []string{react1}) || page2.NextBatch != "" || page2.PrevBatch != page.NextBatch {
			t.Fatalf("second page = %v next %q, want [%s] and no next", ids(page2.Chunk), page2.NextBatch, react1)
		}
		alice.must("GET", v1+"/relations/"+pathEscape(root)+"?dir=f&limit=2", nil, &page)
		alice.must("GET", v1+"/relations/"+pathEscape(root)+"?dir=f&limit=2&from="+page.NextBatch, nil, &page2)
		if got := append(ids(page.Chunk), ids(page2.Chunk)...); !slices.Equal(got, []string{react1, edit, react2}) {
			t.Fatalf("forward pages = %v", got)
		}
		for _, tc := range []struct {
			path string
			want []string
		}{
			{"/m.annotation", []string{react2, react1}},
			{"/m.annotation/m.reaction", []string{react2, react1}},
			{"/m.annotation/m.room.message", nil},
			{"/m.replace", []string{edit}},
			{"/m.replace/m.room.message", []string{edit}},
		} {
			alice.must("GET", v1+"/relations/"+pathEscape(root)+tc.path, nil, &page)
			if got := ids(page.Chunk); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("relations%s = %v, want %v", tc.path, got, tc.want)
			}
		}
		var res pageResp
		if code := alice.do("GET", v1+"/relations/"+pathEscape("$unknown:x"), nil, &res); code != http.StatusNotFound || res.Errcode != "M_NOT_FOUND" {
			t.Fatalf("relations of an unknown event: %d %s", code, res.Errcode)
		}

		// Threads: A gets replies from bob, then B (alice's) a later one.
		rootA, rootB := alice.send(room, "ta", "thread A"), alice.send(room, "tb", "thread B")
		thread := func(c *client, parent, txn, body string) string {
			return sendRaw(c, "m.room.message", txn, map[string]any{"msgtype": "m.text", "body": body, "m.relates_to": rel("m.thread", parent, nil)})
		}
		thread(bob, rootA, "a1", "in A")
		lastA := thread(bob, rootA, "a2", "in A again")
		lastB := thread(alice, rootB, "b1", "in B")
		var threads pageResp
		bob.must("GET", v1+"/threads", nil, &threads)
		if got, want := ids(threads.Chunk), []string{rootB, rootA}; !slices.Equal(got, want) {
			t.Fatalf("threads = %v, want %v (latest reply first)", got, want)
		}
		summary := func(e event) (float64, string, bool) {
			rels, _ := e.Unsigned["m.relations"].(map[string]any)
			th, _ := rels["m.thread"].(map[string]any)
			latest, _ := th["latest_event"].(map[string]any)
			n, _ := th["count"].(float64)
			id, _ := latest["event_id"].(string)
			mine, _ := th["current_user_participated"].(bool)
			return n, id, mine
		}
		if n, latest, mine := summary(threads.Chunk[1]); n != 2 || latest != lastA || !mine {
			t.Fatalf("thread A summary: count %v latest %s participated %v; want 2, %s, true", n, latest, mine, lastA)
		}
		if n, latest, mine := summary(threads.Chunk[0]); n != 1 || latest != lastB || mine {
			t.Fatalf("thread B summary for bob: count %v latest %s participated %v; want 1, %s, false", n, latest, mine, lastB)
		}
		bob.must("GET", v1+"/threads?include=participated", nil, &threads)
		if got := ids(threads.Chunk); !slices.Equal(got, []string{rootA}) {
			t.Fatalf("threads bob participated in = %v, want [%s]", got, rootA)
		}
		bob.must("GET", v1+"/threads?limit=1", nil, &threads)
		if !slices.Equal(ids(threads.Chunk), []string{rootB}) || threads.NextBatch == "" {
			t.Fatalf("threads page 1 = %v next %q", ids(threads.Chunk), threads.NextBatch)
		}
		bob.must("GET", v1+"/threads?limit=1&from="+threads.NextBatch, nil, &threads)
		if !slices.Equal(ids(threads.Chunk), []string{rootA}) {
			t.Fatalf("threads page 2 = %v, want [%s]", ids(threads.Chunk), rootA)
		}

		if code := bob.do("GET", v1+"/threads?limit=0", nil, &res); code != http.StatusBadRequest || res.Errcode != "M_INVALID_PARAM" {
			t.Fatalf("threads with limit 0: %d %s, want 400 M_INVALID_PARAM", code, res.Errcode)
		}

		// timestamp_to_event, both ways, from the timestamp of an event.
		var ev struct {
			TS int64 `json:"origin_server_ts"`
		}
		alice.must("GET", v3+"/event/"+pathEscape(edit), nil, &ev)
		type tsResp struct {
			EventID string `json:"event_id"`
			TS      int64  `json:"origin_server_ts"`
			Errcode string `json:"errcode"`
		}
		for _, dir := range []string{"f", "b"} {
			var got tsResp
			alice.must("GET", fmt.Sprintf("%s/timestamp_to_event?dir=%s&ts=%d", v1, dir, ev.TS), nil, &got)
			if got.TS != ev.TS || got.EventID == "" {
				t.Fatalf("timestamp_to_event dir=%s ts=%d: %+v, want an event at that timestamp", dir, ev.TS, got)
			}
		}
		var latest, first tsResp
		alice.must("GET", v1+"/timestamp_to_event?dir=b&ts=9999999999999", nil, &latest)
		if latest.EventID != lastB {
			t.Fatalf("the latest event = %s, want %s", latest.EventID, lastB)
		}
		alice.must("GET", v1+"/timestamp_to_event?dir=f&ts=0", nil, &first)
		var createEv event
		alice.must("GET", v3+"/state/m.room.create/?format=event", nil, &createEv)
		if first.EventID != createEv.EventID {
			t.Fatalf("the first event = %s, want the create event %s", first.EventID, createEv.EventID)
		}
		for _, q := range []string{"dir=b&ts=0", "dir=f&ts=9999999999999"} {
			var none tsResp
			if code := alice.do("GET", v1+"/timestamp_to_event?"+q, nil, &none); code != http.StatusNotFound || none.Errcode != "M_NOT_FOUND" {
				t.Fatalf("timestamp_to_event?%s: %d %s, want 404 M_NOT_FOUND", q, code, none.Errcode)
			}
		}
		var bad tsResp
		if code := alice.do("GET", v1+"/timestamp_to_event?dir=x&ts=1", nil, &bad); code != http.StatusBadRequest {
			t.Fatalf("timestamp_to_event with a bad dir: %d, want 400", code)
		}

		// Bundled aggregations: the latest valid edit, references and the
		// thread summary ride along in unsigned["m.relations"] wherever the
		// event is served. bob's "edit" of alice's message is not valid.
		sendRaw(bob, "m.room.message", "x4", map[string]any{
			"msgtype": "m.text", "body": "* hijack", "m.new_content": map[string]any{"msgtype": "m.text", "body": "hijack"},
			"m.relates_to": rel("m.replace", root, nil),
		})
		edit2 := sendRaw(alice, "m.room.message", "x5", map[string]any{
			"msgtype": "m.text", "body": "* root!!", "m.new_content": map[string]any{"msgtype": "m.text", "body": "root!!"},
			"m.relates_to": rel("m.replace", root, nil),
		})
		ref := sendRaw(bob, "m.room.message", "x6", map[string]any{"msgtype": "m.text", "body": "see above", "m.relates_to": rel("m.reference", root, nil)})
		checkBundle := func(where string, e event, wantEdit string) {
			t.Helper()
			rels, _ := e.Unsigned["m.relations"].(map[string]any)
			replace, _ := rels["m.replace"].(map[string]any)
			if got, _ := replace["event_id"].(string); got != wantEdit {
				t.Fatalf("%s: bundled m.replace of the root = %q, want %q (unsigned %v)", where, got, wantEdit, e.Unsigned)
			}
			refs, _ := rels["m.reference"].(map[string]any)
			chunk, _ := refs["chunk"].([]any)
			if len(chunk) != 1 || chunk[0].(map[string]any)["event_id"] != ref {
				t.Fatalf("%s: bundled m.reference of the root = %v, want [%s]", where, refs, ref)
			}
			if e.Content["body"] != "root" && wantEdit != "" {
				t.Fatalf("%s: the root's content was replaced: %v", where, e.Content)
			}
		}
		var one event
		bob.must("GET", v3+"/event/"+pathEscape(root), nil, &one)
		checkBundle("/event", one, edit2)
		var ctxRes struct {
			Event event `json:"event"`
		}
		bob.must("GET", v3+"/context/"+pathEscape(root)+"?limit=2", nil, &ctxRes)
		checkBundle("/context", ctxRes.Event, edit2)
		found := false
		for _, e := range bob.history(room) {
			if e.EventID == root {
				checkBundle("/messages", e, edit2)
				found = true
			}
			if e.EventID == rootA {
				if n, latest, mine := summary(e); n != 2 || latest != lastA || !mine {
					t.Fatalf("/messages: thread A summary: count %v latest %s participated %v", n, latest, mine)
				}
			}
		}
		if !found {
			t.Fatal("/messages never returned the root")
		}
		initial := bob.syncFilter(`{"room":{"timeline":{"limit":50}}}`)
		found = false
		for _, e := range initial.Rooms.Join[room].Timeline.Events {
			if e.EventID == root {
				checkBundle("/sync", e, edit2)
				found = true
			}
		}
		if !found {
			t.Fatal("the initial sync's timeline lacks the root")
		}
		// Redacting the original drops its edit, not its references.
		alice.must("PUT", v3+"/redact/"+pathEscape(root)+"/rd1", map[string]any{}, nil)
		bob.must("GET", v3+"/event/"+pathEscape(root), nil, &one)
		checkBundle("/event after redacting the root", one, "")
	})
}
