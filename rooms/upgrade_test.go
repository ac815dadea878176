package rooms

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
)

const (
	upAlice = "@alice:test.local" // the old room's creator
	upMod   = "@mod:test.local"   // a moderator who upgrades
	upBob   = "@bob:test.local"
)

// oldRoomState is a public room's state with everything an upgrade
// looks at, and some it must leave behind.
func oldRoomState(t *testing.T, levels map[string]any) []InitialStateDef {
	def := func(typ, key string, c any) InitialStateDef {
		return InitialStateDef{Type: typ, StateKey: key, Content: content(t, c)}
	}
	return []InitialStateDef{
		def(spec.MRoomCreate, "", map[string]any{"room_version": "10", "creator": upAlice, "type": "m.space", "m.federate": false}),
		def(spec.MRoomMember, upAlice, map[string]any{"membership": "join"}),
		def(spec.MRoomMember, upMod, map[string]any{"membership": "join", "displayname": "Mod"}),
		def(spec.MRoomMember, upBob, map[string]any{"membership": "invite"}),
		def(spec.MRoomPowerLevels, "", levels),
		def(spec.MRoomJoinRules, "", map[string]any{"join_rule": "public"}),
		def(spec.MRoomHistoryVisibility, "", map[string]any{"history_visibility": "shared"}),
		def(spec.MRoomGuestAccess, "", map[string]any{"guest_access": "forbidden"}),
		def(spec.MRoomName, "", map[string]any{"name": "Tea"}),
		def(spec.MRoomTopic, "", map[string]any{"topic": "Green"}),
		def(spec.MRoomAvatar, "", map[string]any{"url": "mxc://test.local/tea"}),
		def(spec.MRoomEncryption, "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}),
		def(MRoomServerACL, "", map[string]any{"allow": []string{"*"}, "deny": []string{"evil.example"}, "allow_ip_literals": false}),
		def(spec.MRoomCanonicalAlias, "", map[string]any{"alias": "#tea:test.local", "alt_aliases": []string{"#thé:elsewhere.example", "#green:test.local"}}),
		def("org.example.widget", "", map[string]any{"url": "https://example.org"}),
		def("m.room.pinned_events", "", map[string]any{"pinned": []string{"$x"}}),
	}
}

// modLevels are the levels /createRoom gives a public room, with a
// moderator at 50 who may send the tombstone.
func modLevels(t *testing.T) map[string]any {
	levels, err := (&CreateRequest{}).powerLevels(upAlice, presets["public_chat"])
	if err != nil {
		t.Fatal(err)
	}
	levels["users"].(map[string]any)[upMod] = 50
	levels["events"].(map[string]any)[MRoomTombstone] = 50
	return levels
}

// buildAll builds and applies the events in a fresh room, as the room
// actor does for CreateRoom, failing the test on any refusal.
func buildAll(t *testing.T, version string, evs []*messages.EventContent) *Room {
	t.Helper()
	s := testSigner(t)
	r, err := NewRoom("!new:test.local", version)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range evs {
		ev, err := r.Build(c, time.Now(), s)
		if err != nil {
			t.Fatalf("event %d (%s): %v", i, c.Type, err)
		}
		r.Apply(ev)
	}
	return r
}

func stateOf(t *testing.T, r *Room, typ string) map[string]any {
	t.Helper()
	ev := r.State.Get(typ, "")
	if ev == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(ev.Content(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUpgradeCopiesTheTransferableStateAndNoMembers(t *testing.T) {
	for _, version := range []string{"10", "11"} {
		t.Run(version, func(t *testing.T) {
			up := &Upgrade{OldRoomID: "!old:test.local", LastEventID: "$last", NewVersion: version, ServerName: "test.local",
				OldState: oldRoomState(t, modLevels(t))}
			evs, err := up.Compose(upMod, CreatorProfile{DisplayName: "Mod"})
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, e := range evs {
				types = append(types, e.Type)
				if e.Sender != upMod {
					t.Errorf("%s sent by %s, want the upgrader", e.Type, e.Sender)
				}
			}
			want := []string{spec.MRoomCreate, spec.MRoomMember, spec.MRoomPowerLevels, spec.MRoomJoinRules, spec.MRoomHistoryVisibility,
				spec.MRoomGuestAccess, spec.MRoomName, spec.MRoomTopic, spec.MRoomAvatar, spec.MRoomEncryption, MRoomServerACL,
				spec.MRoomCanonicalAlias, spec.MRoomPowerLevels}
			if !slices.Equal(types, want) {
				t.Fatalf("events %v\nwant   %v", types, want)
			}
			// httpapi reads only UpgradeReads of the old room: that is all
			// Compose uses.
			read := *up
			read.OldState = slices.DeleteFunc(slices.Clone(up.OldState), func(d InitialStateDef) bool {
				return d.StateKey != "" || !slices.Contains(UpgradeReads(), d.Type)
			})
			if again, err := read.Compose(upMod, CreatorProfile{DisplayName: "Mod"}); err != nil || !reflect.DeepEqual(again, evs) {
				t.Fatalf("Compose from UpgradeReads alone differs: %v", err)
			}
			r := buildAll(t, version, evs)

			create := stateOf(t, r, spec.MRoomCreate)
			pred, _ := create["predecessor"].(map[string]any)
			if pred["room_id"] != "!old:test.local" || pred["event_id"] != "$last" || create["room_version"] != version ||
				create["type"] != "m.space" || create["m.federate"] != false {
				t.Errorf("create content %v", create)
			}
			if c, ok := create["creator"]; (version == "10") != ok || (ok && c != upMod) {
				t.Errorf("create creator %v in version %s", c, version)
			}
			if r.State.Membership(upMod) != "join" || r.State.Membership(upAlice) != "" || r.State.Membership(upBob) != "" {
				t.Errorf("memberships: mod %q alice %q bob %q; only the upgrader belongs to a new room",
					r.State.Membership(upMod), r.State.Membership(upAlice), r.State.Membership(upBob))
			}
			if r.State.Get("org.example.widget", "") != nil || r.State.Get("m.room.pinned_events", "") != nil {
				t.Error("state outside the transferred list was copied")
			}
			for _, typ := range []string{spec.MRoomJoinRules, spec.MRoomName, MRoomServerACL, spec.MRoomEncryption} {
				old := up.StateContent(typ)
				var want map[string]any
				_ = json.Unmarshal(old, &want)
				if got := stateOf(t, r, typ); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v, want the old room's %v", typ, got, want)
				}
			}
			// Remote aliases stay with the old room's canonical alias.
			if got := stateOf(t, r, spec.MRoomCanonicalAlias); !reflect.DeepEqual(got, map[string]any{
				"alias": "#tea:test.local", "alt_aliases": []any{"#green:test.local"}}) {
				t.Errorf("canonical alias %v", got)
			}
			// The moderator held 100 while copying; the final levels are
			// the old room's exactly.
			var wantLevels map[string]any
			_ = json.Unmarshal(content(t, modLevels(t)), &wantLevels)
			if got := stateOf(t, r, spec.MRoomPowerLevels); !reflect.DeepEqual(got, wantLevels) {
				t.Errorf("final power levels %v\nwant %v", got, wantLevels)
			}
			var temp map[string]any
			_ = json.Unmarshal(evs[2].Content, &temp)
			if users := temp["users"].(map[string]any); users[upMod] != float64(100) || users[upAlice] != float64(100) {
				t.Errorf("temporary levels' users %v, want the moderator raised to 100", users)
			}
		})
	}
}

func TestUpgradeByAFullPowerUserSendsThePowerLevelsOnce(t *testing.T) {
	up := &Upgrade{OldRoomID: "!old:test.local", LastEventID: "$last", NewVersion: "11", ServerName: "test.local",
		OldState: oldRoomState(t, modLevels(t))}
	evs, err := up.Compose(upAlice, CreatorProfile{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == spec.MRoomPowerLevels {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d power levels events, want 1 (alice already has every power)", n)
	}
	buildAll(t, "11", evs)
}

// Power levels that keep some action above everyone's level: the
// temporary levels must still let the upgrader send all the state.
func TestUpgradeRaisesTheUpgraderToTheHighestLevelNamed(t *testing.T) {
	levels := modLevels(t)
	levels["events"].(map[string]any)[spec.MRoomName] = 150
	levels["users"].(map[string]any)[upAlice] = 150
	up := &Upgrade{OldRoomID: "!old:test.local", LastEventID: "$last", NewVersion: "11", ServerName: "test.local",
		OldState: oldRoomState(t, levels)}
	evs, err := up.Compose(upMod, CreatorProfile{})
	if err != nil {
		t.Fatal(err)
	}
	r := buildAll(t, "11", evs)
	users := stateOf(t, r, spec.MRoomPowerLevels)["users"].(map[string]any)
	if users[upMod] != float64(50) || users[upAlice] != float64(150) {
		t.Fatalf("final users %v", users)
	}
}

func TestUpgradeOfARoomWithoutOptionalState(t *testing.T) {
	up := &Upgrade{OldRoomID: "!old:test.local", LastEventID: "$last", NewVersion: "11", ServerName: "test.local",
		OldState: []InitialStateDef{
			{Type: spec.MRoomCreate, Content: content(t, map[string]any{"room_version": "11"})},
			{Type: spec.MRoomMember, StateKey: upAlice, Content: content(t, map[string]any{"membership": "join"})},
		}}
	evs, err := up.Compose(upAlice, CreatorProfile{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events, want only create and join", len(evs))
	}
	create := stateOf(t, buildAll(t, "11", evs), spec.MRoomCreate)
	if _, ok := create["type"]; ok {
		t.Errorf("a room without a type got one: %v", create)
	}
}

func TestRestrictedPowerLevels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    string // "" when unchanged
		changed bool
	}{
		{"defaults raised to 50", `{"users":{"@a:x":100},"events_default":0,"invite":0}`,
			`{"users":{"@a:x":100},"events_default":50,"invite":50}`, true},
		{"absent keys set", `{"users":{"@a:x":100}}`, `{"users":{"@a:x":100},"events_default":50,"invite":50}`, true},
		{"above users_default", `{"users_default":70,"events_default":10,"invite":80}`,
			`{"users_default":70,"events_default":71,"invite":80}`, true},
		{"already restricted", `{"events_default":50,"invite":100}`, "", false},
		{"string levels of older rooms", `{"events_default":"0","invite":"60"}`, `{"events_default":50,"invite":"60"}`, true},
		{"numbers kept exact", `{"users":{"@a:x":9007199254740993},"events_default":0,"invite":50}`,
			`{"users":{"@a:x":9007199254740993},"events_default":50,"invite":50}`, true},
		{"not an object", `[1]`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := RestrictedPowerLevels(json.RawMessage(tc.in))
			if changed != tc.changed {
				t.Fatalf("changed = %v, want %v", changed, tc.changed)
			}
			if !changed {
				return
			}
			var g, w any
			_ = json.Unmarshal(got, &g)
			_ = json.Unmarshal([]byte(tc.want), &w)
			if !reflect.DeepEqual(g, w) || !json.Valid(got) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if tc.name == "numbers kept exact" && !strings.Contains(string(got), "9007199254740993") {
				t.Fatalf("%s lost the exact level", got)
			}
		})
	}
}

func TestSplitCanonicalAlias(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          string
		moved, kept map[string]any
		ok          bool
	}{
		{"local alias and alts move, remote stay", `{"alias":"#a:test.local","alt_aliases":["#b:test.local","#c:far.example"]}`,
			map[string]any{"alias": "#a:test.local", "alt_aliases": []any{"#b:test.local"}},
			map[string]any{"alt_aliases": []any{"#c:far.example"}}, true},
		{"remote main alias stays", `{"alias":"#a:far.example","alt_aliases":["#b:test.local"]}`,
			map[string]any{"alt_aliases": []any{"#b:test.local"}},
			map[string]any{"alias": "#a:far.example"}, true},
		{"all local: old event emptied", `{"alias":"#a:test.local"}`,
			map[string]any{"alias": "#a:test.local"}, map[string]any{}, true},
		{"nothing local", `{"alias":"#a:far.example"}`, nil, nil, false},
		{"a server name that only ends like ours", `{"alias":"#a:nottest.local"}`, nil, nil, false},
		{"empty", `{}`, nil, nil, false},
		{"no event", ``, nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in json.RawMessage
			if tc.in != "" {
				in = json.RawMessage(tc.in)
			}
			moved, kept, ok := SplitCanonicalAlias(in, "test.local")
			if ok != tc.ok || !reflect.DeepEqual(moved, tc.moved) || !reflect.DeepEqual(kept, tc.kept) {
				t.Fatalf("got %v %v %v, want %v %v %v", moved, kept, ok, tc.moved, tc.kept, tc.ok)
			}
		})
	}
}
