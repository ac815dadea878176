package actors

import (
	"slices"
	"testing"
	"time"
)

func TestTypingSetsSerialsAndWakeUps(t *testing.T) {
	ty := NewTyping()
	start := ty.Serial()
	woke, cancel := ty.Wait([]string{"!r:x"}, start)
	defer cancel()
	other, cancelOther := ty.Wait([]string{"!other:x"}, start)
	defer cancelOther()

	ty.Set("!r:x", "@a:x", true, time.Minute)
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("a typing change did not wake the room's waiter")
	}
	select {
	case <-other:
		t.Fatal("a typing change woke another room's waiter")
	default:
	}
	ty.Set("!r:x", "@b:x", true, time.Minute)
	ty.Set("!r:x", "@b:x", true, time.Minute) // a refresh is no change
	afterTwo := ty.Serial()
	if afterTwo != start+2 {
		t.Fatalf("serial %d after two changes from %d", afterTwo, start)
	}
	if got := ty.Changed([]string{"!r:x", "!other:x"}, start); !slices.Equal(got["!r:x"], []string{"@a:x", "@b:x"}) || len(got) != 1 {
		t.Fatalf("Changed = %v", got)
	}
	if got := ty.Changed([]string{"!r:x"}, afterTwo); len(got) != 0 {
		t.Fatalf("nothing changed after %d, got %v", afterTwo, got)
	}
	ty.Set("!r:x", "@a:x", false, 0)
	if got := ty.Changed([]string{"!r:x"}, afterTwo); !slices.Equal(got["!r:x"], []string{"@b:x"}) {
		t.Fatalf("after a stopped: %v", got)
	}
	// A waiter that is already behind wakes at once.
	late, cancelLate := ty.Wait([]string{"!r:x"}, start)
	defer cancelLate()
	select {
	case <-late:
	default:
		t.Fatal("a waiter behind the room's serial must wake at once")
	}
}

func TestTypingExpires(t *testing.T) {
	ty := NewTyping()
	since := ty.Serial()
	ty.Set("!r:x", "@a:x", true, time.Second) // the shortest timeout
	set := ty.Serial()
	woke, cancel := ty.Wait([]string{"!r:x"}, set)
	defer cancel()
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("the typing notification did not expire")
	}
	got := ty.Changed([]string{"!r:x"}, since)
	if users, ok := got["!r:x"]; !ok || len(users) != 0 {
		t.Fatalf("after expiry Changed = %v, want the room with nobody typing", got)
	}
}
