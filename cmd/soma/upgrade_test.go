package main

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"testing"
)

func roomPath(roomID, rest string) string {
	return "/_matrix/client/v3/rooms/" + pathEscape(roomID) + rest
}

// stateContent reads a room's (type, "") state content as c.
func (c *client) stateContent(roomID, typ string) map[string]any {
	c.t.Helper()
	var out map[string]any
	c.must("GET", roomPath(roomID, "/state/"+typ+"/"), nil, &out)
	return out
}

// findState returns the state event of a type (state key "") that a
// /sync gives for a joined room, in its state or its timeline.
func (s syncResp) findState(roomID, typ string) *event {
	room, ok := s.Rooms.Join[roomID]
	if !ok {
		return nil
	}
	for _, evs := range [][]event{room.State.Events, room.Timeline.Events} {
		for i := range evs {
			if evs[i].Type == typ && evs[i].StateKey != nil && *evs[i].StateKey == "" {
				return &evs[i]
			}
		}
	}
	return nil
}

// TestRoomUpgrade: a moderator (power 50, allowed the tombstone) upgrades
// a published version 10 room with aliases to version 11. The old room
// gets the tombstone and power levels that silence ordinary members; the
// new room names its predecessor and has the old room's state (but only
// its upgrader as member); the aliases and the directory listing follow
// the new room; the other member finds the tombstone in /sync and joins
// the new room, taking his tags and push rules of the old room along;
// the new room is upgraded in its turn.
// Refusals: no token, bad bodies, unsupported versions,
// members without the power, non-members.
func TestRoomUpgrade(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		alice, mod, bob, carol := srv.register("alice"), srv.register("mod"), srv.register("bob"), srv.register("carol")

		old := alice.createRoom(map[string]any{
			"preset": "public_chat", "visibility": "public", "room_version": "10", "room_alias_name": "tea",
			"name": "Tea Room", "topic": "Green and black",
			"power_level_content_override": map[string]any{
				"users":  map[string]any{alice.userID: 100, mod.userID: 50},
				"events": map[string]any{"m.room.tombstone": 50, "m.room.power_levels": 50, "m.room.history_visibility": 100},
			},
			"initial_state": []map[string]any{
				{"type": "m.room.avatar", "content": map[string]any{"url": "mxc://test.local/tea"}},
				{"type": "m.room.guest_access", "content": map[string]any{"guest_access": "can_join"}},
				{"type": "org.example.widget", "content": map[string]any{"url": "https://example.org"}},
			},
		})
		mod.must("POST", roomPath(old, "/join"), map[string]any{}, nil)
		bob.must("POST", roomPath(old, "/join"), map[string]any{}, nil)
		alice.must("PUT", aliasPath("#green-tea:test.local"), map[string]any{"room_id": old}, nil)
		alice.must("PUT", roomPath(old, "/state/m.room.canonical_alias/"), map[string]any{
			"alias": "#tea:test.local", "alt_aliases": []string{"#green-tea:test.local", "#te:elsewhere.example"}}, nil)
		// Bob's settings of the old room, to follow him to the new one.
		bob.must("PUT", "/_matrix/client/v3/user/"+url.PathEscape(bob.userID)+"/rooms/"+pathEscape(old)+"/tags/m.favourite", map[string]any{"order": 0.25}, nil)
		bob.must("PUT", "/_matrix/client/v3/pushrules/global/room/"+pathEscape(old), map[string]any{"actions": []any{}}, nil)
		bob.must("PUT", "/_matrix/client/v3/pushrules/global/override/"+pathEscape(old), map[string]any{
			"actions": []any{}, "conditions": []any{map[string]any{"kind": "event_match", "key": "room_id", "pattern": old}}}, nil)
		bob.send(old, "before", "last words")
		oldLevels := alice.stateContent(old, "m.room.power_levels")
		bobSince := bob.sync("", 0).NextBatch

		// /capabilities says which versions an upgrade may ask for.
		var caps struct {
			Capabilities struct {
				RoomVersions struct {
					Default   string            `json:"default"`
					Available map[string]string `json:"available"`
				} `json:"m.room_versions"`
			} `json:"capabilities"`
		}
		bob.must("GET", "/_matrix/client/v3/capabilities", nil, &caps)
		if rv := caps.Capabilities.RoomVersions; rv.Default != "11" || !reflect.DeepEqual(rv.Available, map[string]string{"10": "stable", "11": "stable"}) {
			t.Fatalf("m.room_versions %+v", rv)
		}

		upgrade := roomPath(old, "/upgrade")
		srv.anonymous().wantError("POST", upgrade, map[string]any{"new_version": "11"}, http.StatusUnauthorized, "M_MISSING_TOKEN")
		mod.wantError("POST", upgrade, `{"new_version": "11"`, http.StatusBadRequest, "M_NOT_JSON")
		mod.wantError("POST", upgrade, `["11"]`, http.StatusBadRequest, "M_BAD_JSON")
		mod.wantError("POST", upgrade, map[string]any{"new_version": 11}, http.StatusBadRequest, "M_BAD_JSON")
		mod.wantError("POST", upgrade, map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM")
		mod.wantError("POST", upgrade, map[string]any{"new_version": "12"}, http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION")
		mod.wantError("POST", upgrade, map[string]any{"new_version": "org.example.custom"}, http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION")
		bob.wantError("POST", upgrade, map[string]any{"new_version": "11"}, http.StatusForbidden, "M_FORBIDDEN")
		carol.wantError("POST", upgrade, map[string]any{"new_version": "11"}, http.StatusForbidden, "M_FORBIDDEN")
		mod.wantError("POST", roomPath("!nowhere:test.local", "/upgrade"), map[string]any{"new_version": "11"}, http.StatusForbidden, "M_FORBIDDEN")
		mod.wantError("POST", roomPath("not-a-room", "/upgrade"), map[string]any{"new_version": "11"}, http.StatusBadRequest, "M_INVALID_PARAM")
		// None of the refusals changed the room.
		var tomb map[string]any
		if code := mod.do("GET", roomPath(old, "/state/m.room.tombstone/"), nil, &tomb); code != http.StatusNotFound {
			t.Fatalf("tombstone before any upgrade: %d %v", code, tomb)
		}

		var res struct {
			ReplacementRoom string `json:"replacement_room"`
		}
		mod.must("POST", upgrade, map[string]any{"new_version": "11"}, &res)
		repl := res.ReplacementRoom
		if repl == "" || repl == old {
			t.Fatalf("replacement_room %q", repl)
		}

		// The old room: tombstone, restricted power levels, the moved
		// aliases taken out of its canonical alias.
		tomb = bob.stateContent(old, "m.room.tombstone")
		if tomb["replacement_room"] != repl || tomb["body"] == "" {
			t.Fatalf("tombstone %v", tomb)
		}
		levels := bob.stateContent(old, "m.room.power_levels")
		if levels["events_default"] != float64(50) || levels["invite"] != float64(50) {
			t.Fatalf("old room's power levels after the upgrade: %v", levels)
		}
		bob.wantError("PUT", roomPath(old, "/send/m.room.message/after"), map[string]any{"msgtype": "m.text", "body": "still here?"},
			http.StatusForbidden, "M_FORBIDDEN")
		if ca := bob.stateContent(old, "m.room.canonical_alias"); !reflect.DeepEqual(ca, map[string]any{"alt_aliases": []any{"#te:elsewhere.example"}}) {
			t.Fatalf("old room's canonical alias %v", ca)
		}

		// The new room: predecessor, copied state, final power levels the
		// old room's own, the moderator its only member.
		create := mod.stateContent(repl, "m.room.create")
		pred, _ := create["predecessor"].(map[string]any)
		if pred["room_id"] != old || create["room_version"] != "11" || create["creator"] != nil {
			t.Fatalf("new room's create %v", create)
		}
		lastID, _ := pred["event_id"].(string)
		var last event
		bob.must("GET", roomPath(old, "/event/"+url.PathEscape(lastID)), nil, &last)
		if last.Type != "m.room.message" || last.Content["body"] != "last words" {
			t.Fatalf("predecessor event_id names %+v, want the old room's last event", last)
		}
		for typ, want := range map[string]map[string]any{
			"m.room.name":               {"name": "Tea Room"},
			"m.room.topic":              {"topic": "Green and black"},
			"m.room.avatar":             {"url": "mxc://test.local/tea"},
			"m.room.join_rules":         {"join_rule": "public"},
			"m.room.history_visibility": {"history_visibility": "shared"},
			"m.room.guest_access":       {"guest_access": "can_join"},
			"m.room.power_levels":       oldLevels,
			"m.room.canonical_alias":    {"alias": "#tea:test.local", "alt_aliases": []any{"#green-tea:test.local"}},
		} {
			if got := mod.stateContent(repl, typ); !reflect.DeepEqual(got, want) {
				t.Errorf("new room's %s = %v, want %v", typ, got, want)
			}
		}
		var state []event
		mod.must("GET", roomPath(repl, "/state"), nil, &state)
		for _, ev := range state {
			if ev.Type == "org.example.widget" || ev.Type == "m.room.tombstone" ||
				(ev.Type == "m.room.member" && *ev.StateKey != mod.userID) {
				t.Errorf("new room has %s %v", ev.Type, *ev.StateKey)
			}
		}

		// The directory follows the new room.
		var resolved struct {
			RoomID string `json:"room_id"`
		}
		for _, alias := range []string{"#tea:test.local", "#green-tea:test.local"} {
			if srv.anonymous().must("GET", aliasPath(alias), nil, &resolved); resolved.RoomID != repl {
				t.Fatalf("%s resolves to %s, want the new room %s", alias, resolved.RoomID, repl)
			}
		}
		var page publicRoomsPage
		srv.anonymous().must("GET", "/_matrix/client/v3/publicRooms", nil, &page)
		if !slices.Equal(page.ids(), []string{repl}) {
			t.Fatalf("public rooms %v, want only the new room", page.ids())
		}

		// Bob sees the tombstone in /sync, follows it and joins the new
		// room, whose create event names the old one.
		s := bob.sync(bobSince, 0)
		if ev := s.findState(old, "m.room.tombstone"); ev == nil || ev.Content["replacement_room"] != repl || ev.Sender != mod.userID {
			t.Fatalf("bob's sync of the old room lacks the tombstone: %+v", s.Rooms.Join[old])
		}
		bob.must("POST", "/_matrix/client/v3/join/"+pathEscape(repl), map[string]any{}, nil)
		s = bob.sync(s.NextBatch, 0)
		if ev := s.findState(repl, "m.room.create"); ev == nil || ev.Content["predecessor"].(map[string]any)["room_id"] != old {
			t.Fatalf("bob's sync of the new room lacks its create event with the predecessor: %+v", s.Rooms.Join[repl])
		}
		bob.send(repl, "after", "hello again")
		var tags struct {
			Tags map[string]map[string]any `json:"tags"`
		}
		bob.must("GET", "/_matrix/client/v3/user/"+url.PathEscape(bob.userID)+"/rooms/"+pathEscape(repl)+"/tags", nil, &tags)
		if tags.Tags["m.favourite"]["order"] != 0.25 {
			t.Fatalf("bob's tags of the new room %v, want the old room's", tags.Tags)
		}
		var rule struct {
			RuleID     string           `json:"rule_id"`
			Actions    []any            `json:"actions"`
			Conditions []map[string]any `json:"conditions"`
		}
		bob.must("GET", "/_matrix/client/v3/pushrules/global/room/"+pathEscape(repl), nil, &rule)
		if rule.RuleID != repl || len(rule.Actions) != 0 {
			t.Fatalf("bob's room rule for the new room %+v", rule)
		}
		bob.must("GET", "/_matrix/client/v3/pushrules/global/override/"+pathEscape(repl), nil, &rule)
		if len(rule.Conditions) != 1 || rule.Conditions[0]["pattern"] != repl {
			t.Fatalf("bob's override rule for the new room %+v", rule)
		}
		// Carol, never in the old room, joins the public new room by alias.
		carol.must("POST", "/_matrix/client/v3/join/"+url.PathEscape("#tea:test.local"), map[string]any{}, nil)
		var members struct {
			Joined map[string]any `json:"joined"`
		}
		carol.must("GET", roomPath(repl, "/joined_members"), nil, &members)
		if len(members.Joined) != 3 {
			t.Fatalf("joined members of the new room %v", members.Joined)
		}

		// The new room upgrades in turn, to version 10, whose create
		// event names its creator; the aliases move on again.
		mod.must("POST", roomPath(repl, "/upgrade"), map[string]any{"new_version": "10"}, &res)
		third := res.ReplacementRoom
		create = mod.stateContent(third, "m.room.create")
		if pred, _ := create["predecessor"].(map[string]any); pred["room_id"] != repl || create["creator"] != mod.userID || create["room_version"] != "10" {
			t.Fatalf("third room's create %v", create)
		}
		if tomb := bob.stateContent(repl, "m.room.tombstone"); tomb["replacement_room"] != third {
			t.Fatalf("second tombstone %v", tomb)
		}
		if srv.anonymous().must("GET", aliasPath("#tea:test.local"), nil, &resolved); resolved.RoomID != third {
			t.Fatalf("#tea resolves to %s after the second upgrade, want %s", resolved.RoomID, third)
		}
	})
}
