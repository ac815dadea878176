package httpapi

import "testing"

func TestSyncTokensCarryPresenceAndStayCompatible(t *testing.T) {
	tests := []struct {
		tok      string
		pos      int64
		serials  syncSerials
		wantFail bool
	}{
		{tok: syncToken(7, 3, 9), pos: 7, serials: syncSerials{typing: 3, presence: 9}},
		{tok: "s7", pos: 7}, // a stream token: no serials
		{tok: "s7_3", pos: 7, serials: syncSerials{typing: 3}}, // from before presence
		{tok: "s7_3_9_4", pos: 7, serials: syncSerials{3, 9}},  // a later stream is ignored
		{tok: "s7_3_x", wantFail: true},
		{tok: "s7_3_-1", wantFail: true},
		{tok: "t7_3_9", wantFail: true},
	}
	for _, tt := range tests {
		pos, ss, err := parseSyncToken(tt.tok)
		if tt.wantFail {
			if err == nil {
				t.Errorf("parseSyncToken(%q) = %d %+v, want an error", tt.tok, pos, ss)
			}
			continue
		}
		if err != nil || int64(pos) != tt.pos || ss != tt.serials {
			t.Errorf("parseSyncToken(%q) = %d %+v %v, want %d %+v", tt.tok, pos, ss, err, tt.pos, tt.serials)
		}
	}
	// /messages reads a sync token as its stream token.
	if p, err := parseStreamToken(syncToken(7, 3, 9)); err != nil || p != 7 {
		t.Errorf("parseStreamToken(sync token) = %d %v", p, err)
	}
}

func TestParseSetPresence(t *testing.T) {
	for in, want := range map[string]string{"": "online", "online": "online", "offline": "offline", "unavailable": "unavailable"} {
		if got, err := parseSetPresence(in); err != nil || got != want {
			t.Errorf("parseSetPresence(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := parseSetPresence("busy"); err == nil {
		t.Error("set_presence=busy was accepted")
	}
}
