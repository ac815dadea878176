package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

func pushEvent(t *testing.T, raw string) map[string]any {
	t.Helper()
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestDefaultPushRulesDecideNotifyAndHighlight(t *testing.T) {
	const alice = "@alice:test.local"
	rules := compilePushRules(defaultPushRules(alice))
	group := &pushContext{userID: alice, displayName: "Alice Liddell", memberCount: 5}
	oneToOne := &pushContext{userID: alice, memberCount: 2}
	moderator := &pushContext{userID: alice, memberCount: 5, senderCanNotifyRoom: true}
	for _, c := range []struct {
		name   string
		ev     string
		pc     *pushContext
		notify bool
		high   bool
	}{
		{"message in a group", `{"type":"m.room.message","sender":"@b:x","content":{"msgtype":"m.text","body":"hello all"}}`, group, true, false},
		{"message one to one", `{"type":"m.room.message","sender":"@b:x","content":{"msgtype":"m.text","body":"hi"}}`, oneToOne, true, false},
		{"display name", `{"type":"m.room.message","sender":"@b:x","content":{"body":"ask Alice Liddell, she knows"}}`, group, true, true},
		{"user name", `{"type":"m.room.message","sender":"@b:x","content":{"body":"alice: look"}}`, group, true, true},
		{"name inside a word", `{"type":"m.room.message","sender":"@b:x","content":{"body":"malice"}}`, group, true, false},
		{"user mention", `{"type":"m.room.message","sender":"@b:x","content":{"body":"x","m.mentions":{"user_ids":["@alice:test.local"]}}}`, group, true, true},
		{"@room by a moderator", `{"type":"m.room.message","sender":"@b:x","content":{"body":"@room meeting"}}`, moderator, true, true},
		{"@room by anyone", `{"type":"m.room.message","sender":"@b:x","content":{"body":"@room meeting"}}`, group, true, false},
		{"notice", `{"type":"m.room.message","sender":"@b:x","content":{"msgtype":"m.notice","body":"bot"}}`, group, false, false},
		{"member event", `{"type":"m.room.member","state_key":"@b:x","sender":"@b:x","content":{"membership":"join"}}`, group, false, false},
		{"invite for me", `{"type":"m.room.member","state_key":"@alice:test.local","sender":"@b:x","content":{"membership":"invite"}}`, group, true, false},
		{"reaction", `{"type":"m.reaction","sender":"@b:x","content":{}}`, group, false, false},
		{"edit", `{"type":"m.room.message","sender":"@b:x","content":{"body":"* fixed","m.relates_to":{"rel_type":"m.replace","event_id":"$e"}}}`, group, false, false},
		{"encrypted one to one", `{"type":"m.room.encrypted","sender":"@b:x","content":{}}`, oneToOne, true, false},
		{"state noise", `{"type":"m.room.topic","state_key":"","sender":"@b:x","content":{"topic":"x"}}`, group, false, false},
	} {
		got := rules.evaluate(pushEvent(t, c.ev), c.pc)
		if got.notify != c.notify || got.highlight != c.high {
			t.Errorf("%s: notify %v highlight %v, want %v %v", c.name, got.notify, got.highlight, c.notify, c.high)
		}
	}
}

func TestUserPushRulesTakePrecedence(t *testing.T) {
	const alice = "@alice:test.local"
	rs := defaultPushRules(alice)
	for i := range rs.Underride {
		if rs.Underride[i].RuleID == ".m.rule.message" {
			rs.Underride[i].Enabled = false
		}
	}
	rs.Room = append(rs.Room, pushRule{RuleID: "!loud:x", Enabled: true, Actions: []any{"notify", map[string]any{"set_tweak": "highlight"}}})
	rules := compilePushRules(rs)
	group := &pushContext{userID: alice, memberCount: 5}
	msg := `{"type":"m.room.message","room_id":"%s","sender":"@b:x","content":{"body":"hi"}}`
	if o := rules.evaluate(pushEvent(t, fmt.Sprintf(msg, "!quiet:x")), group); o.notify {
		t.Error("with .m.rule.message disabled a group message still notifies")
	}
	if o := rules.evaluate(pushEvent(t, fmt.Sprintf(msg, "!loud:x")), group); !o.notify || !o.highlight {
		t.Errorf("the room rule for !loud:x: %+v, want notify and highlight", o)
	}
}
