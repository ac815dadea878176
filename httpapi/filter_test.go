package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func TestTypeMatchesWildcards(t *testing.T) {
	for _, c := range []struct {
		pattern, typ string
		want         bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
		{"m.*", "m.room.member", true},
		{"m.*", "org.example", false},
		{"*", "anything", true},
		{"*.message", "m.room.message", true},
		{"m.*.member", "m.room.member", true},
		{"m.*.member", "m.room.name", false},
		{"a*a", "a", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
	} {
		if got := typeMatches(c.pattern, c.typ); got != c.want {
			t.Errorf("typeMatches(%q, %q) = %v, want %v", c.pattern, c.typ, got, c.want)
		}
	}
}

func TestEventFilterAllows(t *testing.T) {
	for _, c := range []struct {
		name, filter, typ, sender string
		want                      bool
	}{
		{"absent lists pass all", `{}`, "m.room.message", "@a:x", true},
		{"empty types pass none", `{"types":[]}`, "m.room.message", "@a:x", false},
		{"empty not_types exclude none", `{"not_types":[]}`, "m.room.message", "@a:x", true},
		{"empty senders pass none", `{"senders":[]}`, "m.room.message", "@a:x", false},
		{"types match", `{"types":["m.room.*"]}`, "m.room.message", "@a:x", true},
		{"types miss", `{"types":["m.room.*"]}`, "m.reaction", "@a:x", false},
		{"not_types beats types", `{"types":["m.*"],"not_types":["m.room.message"]}`, "m.room.message", "@a:x", false},
		{"not_types wildcard", `{"not_types":["*"]}`, "m.room.message", "@a:x", false},
		{"senders match", `{"senders":["@a:x"]}`, "m.room.message", "@a:x", true},
		{"senders miss", `{"senders":["@a:x"]}`, "m.room.message", "@b:x", false},
		{"not_senders beats senders", `{"senders":["@a:x"],"not_senders":["@a:x"]}`, "m.room.message", "@a:x", false},
		{"senders take no wildcard", `{"senders":["@*"]}`, "m.room.message", "@a:x", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var f eventFilter
			if err := json.Unmarshal([]byte(c.filter), &f); err != nil {
				t.Fatal(err)
			}
			if got := f.allows(c.typ, c.sender); got != c.want {
				t.Errorf("allows(%q, %q) = %v, want %v", c.typ, c.sender, got, c.want)
			}
		})
	}
}

func TestRoomEventFilterRoomsAndURL(t *testing.T) {
	withURL := persistence.StoredEvent{RoomID: "!a:x", Type: "m.room.message", Sender: "@a:x", JSON: []byte(`{"content":{"url":"mxc://x/y"}}`)}
	without := persistence.StoredEvent{RoomID: "!b:x", Type: "m.room.message", Sender: "@a:x", JSON: []byte(`{"content":{"body":"hi"}}`)}
	for _, c := range []struct {
		filter string
		ev     *persistence.StoredEvent
		want   bool
		name   string
	}{
		{`{"rooms":["!a:x"]}`, &withURL, true, "rooms match"},
		{`{"rooms":["!a:x"]}`, &without, false, "rooms miss"},
		{`{"rooms":["!a:x"],"not_rooms":["!a:x"]}`, &withURL, false, "not_rooms beats rooms"},
		{`{"rooms":[]}`, &withURL, false, "empty rooms pass none"},
		{`{"contains_url":true}`, &withURL, true, "contains_url true keeps url"},
		{`{"contains_url":true}`, &without, false, "contains_url true drops no url"},
		{`{"contains_url":false}`, &withURL, false, "contains_url false drops url"},
		{`{"contains_url":false}`, &without, true, "contains_url false keeps no url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseRoomEventFilter(c.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.allowsEvent(c.ev); got != c.want {
				t.Errorf("allowsEvent = %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseSyncFilterRejectsBadFilters(t *testing.T) {
	for _, param := range []string{`{"room":{"timeline":{"types":"m.room.message"}}}`, `{"room":{"rooms":[1]}}`, `not base64!`, `{`} {
		_, err := parseSyncFilter(param)
		me, ok := err.(*MatrixError)
		if !ok || me.Status != 400 {
			t.Errorf("parseSyncFilter(%q) = %v, want a 400", param, err)
		}
	}
}
