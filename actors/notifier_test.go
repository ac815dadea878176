package actors

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/messages"
)

func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second): // generous: a loaded -race run is slow
		return false
	}
}

func quiet(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	case <-time.After(50 * time.Millisecond):
		return true
	}
}

func TestNotifierWakesOnlyInterestedWaiters(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	n := NewSyncNotifier(system, nil)

	inRoom, cancel1 := n.Wait("@a:x", []string{"!r:x"}, 10)
	defer cancel1()
	elsewhere, cancel2 := n.Wait("@b:x", []string{"!other:x"}, 10)
	defer cancel2()
	invitee, cancel3 := n.Wait("@c:x", nil, 10)
	defer cancel3()

	n.Publish(&messages.RoomAdvanced{RoomId: "!r:x", StreamPos: 11, Users: []string{"@c:x"}})
	if !woken(inRoom) {
		t.Error("a waiter on the room was not woken")
	}
	if !woken(invitee) {
		t.Error("a user whose membership changed was not woken")
	}
	if !quiet(elsewhere) {
		t.Error("a waiter on another room was woken")
	}
}

func TestNotifierWakesLateRegistrationAtOnce(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	n := NewSyncNotifier(system, nil)
	n.Publish(&messages.RoomAdvanced{RoomId: "!r:x", StreamPos: 20})
	// The waiter read storage up to 15 and registers after the publish.
	late, cancel := n.Wait("@a:x", []string{"!r:x"}, 15)
	defer cancel()
	if !woken(late) {
		t.Error("a waiter behind a published position must wake at once")
	}
	upToDate, cancel2 := n.Wait("@a:x", []string{"!r:x"}, 20)
	defer cancel2()
	if !quiet(upToDate) {
		t.Error("a waiter that has read the latest position must wait")
	}
}

func TestNotifierWakesLateRegistrationForAMembershipChange(t *testing.T) {
	system := NewSystem(zerolog.Nop())
	defer system.Shutdown()
	n := NewSyncNotifier(system, nil)
	// The user joins a room they were invited to; their sync read storage
	// before the join was published and waits on their joined rooms only.
	n.Publish(&messages.RoomAdvanced{RoomId: "!invited:x", StreamPos: 30, Users: []string{"@a:x"}})
	late, cancel := n.Wait("@a:x", []string{"!joined:x"}, 25)
	defer cancel()
	if !woken(late) {
		t.Error("a waiter behind its own membership change must wake at once")
	}
}
