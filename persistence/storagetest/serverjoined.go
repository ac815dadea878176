package storagetest

import (
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func testServerJoined(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!servers:test")
	r.create(t, "@alice:test")
	other := newRoom(s, "!servers-other:test")
	other.create(t, "@zed:elsewhere.org")
	r.mustCommit(t,
		r.member("@bob:remote.org", "join"),
		r.member("@carol:other.org:8448", "invite"),
		r.member("@dave:left.org", "join"),
		r.member("@eve:127.0.0.1:1", "join"),
		r.member("@x:EVIL.org", "join"),
		r.member("@y:a_b.org", "join"),
	)
	r.mustCommit(t, r.member("@dave:left.org", "leave"))
	for _, tc := range []struct {
		server string
		want   bool
	}{
		{"test", true},
		{"remote.org", true},
		{"other.org:8448", false}, // only invited
		{"other.org", false},
		{"left.org", false},      // left
		{"elsewhere.org", false}, // another room's member
		{"127.0.0.1:1", true},
		{"1", false}, // a suffix of a joined server's name
		{"0.0.1:1", false},
		{"EVIL.org", true},
		{"evil.org", false}, // exact, whatever the backend's LIKE
		{"a_b.org", true},
		{"aXb.org", false}, // '_' is not a wildcard
		{"%", false},
		{"", false},
	} {
		got, err := s.ServerJoined(bg, r.nid, tc.server)
		if err != nil || got != tc.want {
			t.Errorf("ServerJoined(%q) = %v, %v; want %v", tc.server, got, err, tc.want)
		}
	}
	if got, err := s.ServerJoined(bg, 1<<40, "test"); err != nil || got {
		t.Fatalf("ServerJoined of an unknown room = %v, %v", got, err)
	}
}
