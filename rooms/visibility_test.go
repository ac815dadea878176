package rooms

import "testing"

func TestHistoryVisibilityRules(t *testing.T) {
	cases := []struct {
		vis, atEvent string
		joinedLater  bool
		want         bool
	}{
		{"world_readable", "", false, true},
		{"shared", "", true, true},
		{"", "", true, true}, // unset means shared
		{"shared", "", false, false},
		{"shared", "invite", false, false}, // an invite never accepted
		{"shared", "join", false, true},
		{"invited", "invite", false, true},
		{"invited", "", true, false},
		{"joined", "join", false, true},
		{"joined", "invite", true, false},
		{"joined", "", true, false},
		{"bogus", "", true, false},
	}
	for _, c := range cases {
		if got := CanSeeEvent(c.vis, c.atEvent, c.joinedLater); got != c.want {
			t.Errorf("CanSeeEvent(%q, %q, %v) = %v, want %v", c.vis, c.atEvent, c.joinedLater, got, c.want)
		}
	}
}
