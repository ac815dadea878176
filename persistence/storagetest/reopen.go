package storagetest

import (
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// RunReopen checks that what a store wrote is there when the database is
// opened again: rows, the stream position, epochs, and the NIDs of types
// and state keys. open returns a function that opens the same (initially
// empty) database each time it is called; each store it returns is closed
// when t ends, and closing one early must be allowed.
func RunReopen(t *testing.T, open func(t *testing.T) func() persistence.Store) {
	reopen := open(t)
	s := reopen()
	r := newRoom(s, "!reopen:test")
	r.create(t, "@alice:test")
	r.mustCommit(t, r.event("m.custom.state", ptr("custom key"), "@alice:test", `{}`), r.message("@alice:test", "before"))
	noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: "alice", CreatedTS: 1}))
	max, err := s.MaxStreamPos(bg)
	noErr(t, "MaxStreamPos", err)
	noErr(t, "Close", s.Close())

	s = reopen()
	r.s = s
	if got, err := s.MaxStreamPos(bg); err != nil || got != max {
		t.Fatalf("MaxStreamPos after reopening = %d, %v; want %d", got, err, max)
	}
	if _, err := s.GetAccount(bg, "alice"); err != nil {
		t.Fatalf("GetAccount after reopening: %v", err)
	}
	head, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	if head.Epoch != 2 || head.Snapshot != r.snapshot {
		t.Fatalf("head after reopening %+v, want epoch 2 at snapshot %d", head, r.snapshot)
	}
	r.epoch = head.Epoch
	res := r.mustCommit(t, r.event("m.custom.state", ptr("custom key"), "@alice:test", `{"v":2}`), r.message("@alice:test", "after"))
	if res.StreamPos[0] <= max {
		t.Fatalf("position %d after reopening, want above %d", res.StreamPos[0], max)
	}
	if got, _ := s.MaxStreamPos(bg); got != res.LastStream {
		t.Fatalf("MaxStreamPos = %d, want %d", got, res.LastStream)
	}
	ev, err := s.CurrentStateEvent(bg, r.nid, "m.custom.state", "custom key")
	if err != nil || ev.EventID != r.state[tuple{"m.custom.state", "custom key"}] {
		t.Fatalf("CurrentStateEvent = %v, %v", ev, err)
	}
	r.checkStateBefore(t)
}
