package actors

import (
	"testing"
	"time"
)

// closedNow reports whether ch is closed already, without waiting.
func closedNow(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestPresenceSetChangesSerialsAndWakesWatchers(t *testing.T) {
	p := NewPresence()
	start := p.Serial()
	if got := p.Get("@a:x"); got.Presence != PresenceOffline || !got.LastActive.IsZero() || got.Serial != 0 {
		t.Fatalf("an unknown user is %+v, want offline and never active", got)
	}
	woke, cancel := p.Wait([]string{"@a:x", "@b:x"}, start)
	defer cancel()
	other, cancelOther := p.Wait([]string{"@c:x"}, start)
	defer cancelOther()

	msg := "lunch"
	p.Set("@a:x", PresenceOnline, &msg)
	if !closedNow(woke) {
		t.Fatal("a's change did not wake a watcher of a")
	}
	if closedNow(other) {
		t.Fatal("a's change woke a watcher of c only")
	}
	got := p.Get("@a:x")
	if got.Presence != PresenceOnline || got.StatusMsg == nil || *got.StatusMsg != "lunch" || !got.CurrentlyActive || got.Serial != start+1 {
		t.Fatalf("after Set: %+v", got)
	}
	msg = "changed by the caller after the call"
	if got := p.Get("@a:x"); *got.StatusMsg != "lunch" {
		t.Fatalf("the tracker shares the caller's status message: %q", *got.StatusMsg)
	}

	lunch := "lunch"
	p.Set("@a:x", PresenceOnline, &lunch) // the same state: only activity
	p.Synced("@a:x", PresenceOnline)      // syncing while online: only activity
	if p.Serial() != start+1 {
		t.Fatalf("serial %d: activity without a visible change took a serial", p.Serial())
	}
	p.Set("@a:x", PresenceOnline, nil) // clearing the message is a change
	p.Set("@a:x", PresenceUnavailable, nil)
	if p.Serial() != start+3 {
		t.Fatalf("serial %d after three changes from %d", p.Serial(), start)
	}
	if got := p.Get("@a:x"); got.CurrentlyActive || got.StatusMsg != nil {
		t.Fatalf("unavailable: %+v", got)
	}

	changed := p.Changed([]string{"@a:x", "@b:x"}, start+2)
	if len(changed) != 1 || changed["@a:x"].Presence != PresenceUnavailable {
		t.Fatalf("Changed since the second change = %+v", changed)
	}
	if got := p.Changed([]string{"@a:x"}, p.Serial()); len(got) != 0 {
		t.Fatalf("nothing changed since now, got %+v", got)
	}
	if got := p.Changed([]string{"@a:x", "@nobody:x"}, 0); len(got) != 1 {
		t.Fatalf("Changed since 0 must list the known users only, got %+v", got)
	}

	late, cancelLate := p.Wait([]string{"@a:x"}, start)
	defer cancelLate()
	if !closedNow(late) {
		t.Fatal("a waiter behind the user's serial must wake at once")
	}
	current, cancelCurrent := p.Wait([]string{"@a:x"}, p.Serial())
	cancelCurrent()
	p.Set("@a:x", PresenceOnline, nil)
	if closedNow(current) {
		t.Fatal("a cancelled waiter was woken")
	}
}

func TestPresenceSyncing(t *testing.T) {
	tests := []struct {
		name    string
		put     string // "" for none
		sync    string
		want    string
		changes int64
	}{
		{"sync online marks online", "", PresenceOnline, PresenceOnline, 1},
		{"sync unavailable marks unavailable", "", PresenceUnavailable, PresenceUnavailable, 1},
		{"sync offline changes nothing", "", PresenceOffline, PresenceOffline, 0},
		{"sync offline keeps a chosen online", PresenceOnline, PresenceOffline, PresenceOnline, 1},
		{"a chosen unavailable outlasts syncing", PresenceUnavailable, PresenceOnline, PresenceUnavailable, 1},
		{"syncing overrides a chosen offline", PresenceOffline, PresenceOnline, PresenceOnline, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPresence()
			start := p.Serial()
			if tt.put != "" {
				p.Set("@a:x", tt.put, nil)
			}
			p.Synced("@a:x", tt.sync)
			got := p.Get("@a:x")
			if got.Presence != tt.want {
				t.Fatalf("presence %q, want %q", got.Presence, tt.want)
			}
			if n := p.Serial() - start; n != tt.changes {
				t.Fatalf("%d changes, want %d", n, tt.changes)
			}
			if tt.changes > 0 && time.Since(got.LastActive) > time.Minute {
				t.Fatalf("last active %v: activity was not recorded", got.LastActive)
			}
		})
	}
}

// waitFor polls until cond holds or a few seconds pass.
func waitForPresence(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPresenceDecaysWithoutActivity(t *testing.T) {
	p := NewPresenceWithTimeouts(50*time.Millisecond, 150*time.Millisecond)
	p.Synced("@a:x", PresenceOnline)
	online := p.Serial()
	woke, cancel := p.Wait([]string{"@a:x"}, online)
	defer cancel()
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("going idle did not wake a watcher")
	}
	if got := p.Get("@a:x"); got.Presence != PresenceUnavailable || got.CurrentlyActive || got.Serial != online+1 {
		t.Fatalf("after the idle time: %+v", got)
	}
	waitForPresence(t, "offline", func() bool { return p.Get("@a:x").Presence == PresenceOffline })
	if p.Serial() != online+2 {
		t.Fatalf("serial %d: decay took other than two changes", p.Serial())
	}
	// Offline is the end: no timer runs any more.
	time.Sleep(200 * time.Millisecond)
	if p.Serial() != online+2 {
		t.Fatal("an offline user changed again")
	}

	// Activity restarts the clock: a user who keeps syncing stays online.
	p.Synced("@b:x", PresenceOnline)
	for range 6 {
		time.Sleep(20 * time.Millisecond)
		p.Synced("@b:x", PresenceOnline)
	}
	if got := p.Get("@b:x"); got.Presence != PresenceOnline {
		t.Fatalf("a syncing user went %q", got.Presence)
	}
	waitForPresence(t, "b unavailable", func() bool { return p.Get("@b:x").Presence == PresenceUnavailable })
	// Syncing again brings them back online, and the timers start over.
	p.Synced("@b:x", PresenceOnline)
	if got := p.Get("@b:x"); got.Presence != PresenceOnline || !got.CurrentlyActive {
		t.Fatalf("after syncing again: %+v", got)
	}
	waitForPresence(t, "b offline", func() bool { return p.Get("@b:x").Presence == PresenceOffline })

	// A chosen unavailable decays to offline, and syncing then marks online.
	p.Set("@c:x", PresenceUnavailable, nil)
	waitForPresence(t, "c offline", func() bool { return p.Get("@c:x").Presence == PresenceOffline })
	p.Synced("@c:x", PresenceOnline)
	if got := p.Get("@c:x"); got.Presence != PresenceOnline {
		t.Fatalf("c after decaying and syncing: %q", got.Presence)
	}
}
