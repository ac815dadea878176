package storagetest

import (
	"context"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func testJoinedServers(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice, bob, carol, dan = "@alice:x", "@bob:y.example:8448", "@carol:z", "@dan:w"
	r := newRoom(s, "!shared:x")
	r.create(t, alice)
	r.mustCommit(t, r.member(bob, "join"))
	r.mustCommit(t, r.member(dan, "invite"))
	// carol joins and leaves: her server is no longer in the room.
	r.mustCommit(t, r.member(carol, "join"))
	r.mustCommit(t, r.member(carol, "leave"))

	other := newRoom(s, "!other:z")
	other.create(t, carol)
	other.mustCommit(t, other.member(bob, "join"))

	got, err := s.JoinedServersOfRoom(ctx, "!shared:x")
	noErr(t, "JoinedServersOfRoom", err)
	if want := []string{"x", "y.example:8448"}; !slices.Equal(got, want) {
		t.Fatalf("JoinedServersOfRoom = %v, want %v (the port kept; not the invitee's or the leaver's)", got, want)
	}
	if got, err := s.JoinedServersOfRoom(ctx, "!unknown:x"); err != nil || len(got) != 0 {
		t.Fatalf("JoinedServersOfRoom of an unknown room = %v, %v", got, err)
	}
	cases := []struct {
		user string
		want []string
	}{
		{alice, []string{"x", "y.example:8448"}},
		{bob, []string{"x", "y.example:8448", "z"}},
		{carol, []string{"y.example:8448", "z"}},
		{dan, nil},
	}
	for _, c := range cases {
		got, err := s.ServersSharingRoomsWith(ctx, c.user)
		noErr(t, "ServersSharingRoomsWith", err)
		if !slices.Equal(got, c.want) {
			t.Errorf("ServersSharingRoomsWith(%s) = %v, want %v", c.user, got, c.want)
		}
	}
}
