package httpapi

import (
	"reflect"
	"testing"
)

func TestUpgradeCopiesTheUsersPushRulesAboutTheOldRoom(t *testing.T) {
	const old, repl = "!old:test", "!new:test"
	roomCond := func(id string) []pushCondition {
		return []pushCondition{{Kind: "event_match", Key: "room_id", Pattern: id}}
	}
	rs := defaultPushRules("@bob:test")
	rs.Override = append([]pushRule{
		{RuleID: old, Enabled: true, Conditions: roomCond(old), Actions: []any{}}, // Element's "mute"
		{RuleID: "off", Enabled: false, Conditions: roomCond(old), Actions: []any{"notify"}},
	}, rs.Override...)
	rs.Room = []pushRule{
		{RuleID: "!other:test", Enabled: true, Actions: []any{}},
		{RuleID: old, Enabled: true, Actions: []any{"notify"}}, // "all messages"
	}
	rs.Underride = append([]pushRule{
		{RuleID: "loud", Enabled: true, Conditions: append(roomCond(old), pushCondition{Kind: "event_match", Key: "type", Pattern: "m.room.message"}), Actions: []any{"notify"}},
	}, rs.Underride...)
	defaults := defaultPushRules("@bob:test")

	if !copyRoomPushRules(rs, old, repl) {
		t.Fatal("nothing copied")
	}
	ids := func(rules []pushRule) []string {
		var out []string
		for _, r := range rules {
			out = append(out, r.RuleID)
		}
		return out
	}
	if got, want := ids(rs.Override[:3]), []string{old, repl, "off"}; !reflect.DeepEqual(got, want) {
		t.Errorf("override rules %v, want %v (the disabled one not copied)", got, want)
	}
	if !reflect.DeepEqual(rs.Override[1], pushRule{RuleID: repl, Enabled: true, Conditions: roomCond(repl), Actions: []any{}}) {
		t.Errorf("copied mute rule %+v", rs.Override[1])
	}
	if !reflect.DeepEqual(rs.Override[3:], defaults.Override) {
		t.Error("the server's override rules changed")
	}
	if got, want := ids(rs.Room), []string{"!other:test", old, repl}; !reflect.DeepEqual(got, want) {
		t.Errorf("room rules %v, want %v", got, want)
	}
	if c := rs.Underride[1]; c.RuleID != repl || c.Conditions[0].Pattern != repl || c.Conditions[1].Pattern != "m.room.message" ||
		rs.Underride[0].Conditions[0].Pattern != old {
		t.Errorf("underride copy %+v of %+v", c, rs.Underride[0])
	}

	// Joining again copies nothing twice.
	if copyRoomPushRules(rs, old, repl) {
		t.Error("a second join copied the rules again")
	}
	if copyRoomPushRules(defaultPushRules("@bob:test"), old, repl) {
		t.Error("the server's default rules were copied")
	}
}
