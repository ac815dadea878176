package storagetest

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// A room joined over federation: its state arrives as outliers, the join
// names it whole as its state before, and a later fork is settled by a
// state given whole after the batch.
func testOutliersAndStateResets(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!federated:remote")
	create := r.event("m.room.create", ptr(""), "@alice:remote", `{"creator":"@alice:remote"}`)
	alice := r.member("@alice:remote", "join")
	bob := r.member("@bob:remote", "join")
	topic := r.event("m.room.topic", ptr(""), "@alice:remote", `{"topic":"old"}`)
	for _, ev := range []*persistence.NewEvent{&create, &alice, &bob, &topic} {
		ev.Outlier = true
	}
	refs := []persistence.StateRef{
		{Type: "m.room.create", EventID: create.EventID},
		{Type: "m.room.member", StateKey: "@alice:remote", EventID: alice.EventID, Membership: "join"},
		{Type: "m.room.member", StateKey: "@bob:remote", EventID: bob.EventID, Membership: "join"},
		{Type: "m.room.topic", EventID: topic.EventID},
	}
	join := r.member("@carol:here", "join")
	join.StateBefore = refs
	res := r.mustCommit(t, create, alice, bob, topic, join)
	for i, pos := range res.StreamPos {
		if (i < 4) != (pos < 0) {
			t.Fatalf("event %d has position %d: outliers go below zero, the join above", i, pos)
		}
	}
	events, err := s.RoomEvents(ctx, r.nid, 0, res.LastStream, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].EventID != join.EventID {
		t.Fatalf("the timeline holds %v, want only the join", eventIDsOf(events))
	}
	joined, err := s.EventByID(ctx, join.EventID)
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.SnapshotEvents(ctx, joined.StateBefore)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := eventIDsOf(before), sortedIDs(create.EventID, alice.EventID, bob.EventID, topic.EventID); !slices.Equal(sortStrings(got), want) {
		t.Fatalf("state before the join = %v, want %v", got, want)
	}
	outlier, err := s.EventByID(ctx, topic.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if outlier.StreamPos >= 0 || outlier.StateBefore != 0 || string(outlier.JSON) != string(topic.JSON) {
		t.Fatalf("outlier read back as position %d, state before %d", outlier.StreamPos, outlier.StateBefore)
	}
	assertCurrentState(t, s, r.nid, create.EventID, alice.EventID, bob.EventID, topic.EventID, join.EventID)
	assertMembership(t, s, r.nid, "@bob:remote", "join")
	assertMembership(t, s, r.nid, "@carol:here", "join")

	// A fork settled by state resolution: bob's leave and a new topic win,
	// the topic tuple is dropped from the timeline's view of the state.
	leave := r.member("@bob:remote", "leave")
	leave.Outlier = true
	msg := r.message("@carol:here", "after the fork")
	req := r.request(leave, msg)
	req.Rejected = []persistence.Rejection{{EventID: "$forged", Reason: "bad signature"}}
	req.StateAfter = []persistence.StateRef{
		{Type: "m.room.create", EventID: create.EventID},
		{Type: "m.room.member", StateKey: "@alice:remote", EventID: alice.EventID, Membership: "join"},
		{Type: "m.room.member", StateKey: "@bob:remote", EventID: leave.EventID, Membership: "leave"},
		{Type: "m.room.member", StateKey: "@carol:here", EventID: join.EventID, Membership: "join"},
	}
	res2, err := s.CommitEvents(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	assertCurrentState(t, s, r.nid, create.EventID, alice.EventID, leave.EventID, join.EventID)
	assertMembership(t, s, r.nid, "@bob:remote", "leave")
	if reason, err := s.RejectedReason(ctx, "$forged"); err != nil || reason != "bad signature" {
		t.Fatalf("rejection read back as %q, %v", reason, err)
	}
	if _, err := s.RejectedReason(ctx, msg.EventID); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("an accepted event's rejection: %v, want ErrNotFound", err)
	}
	head, err := s.RoomHead(ctx, r.id)
	if err != nil {
		t.Fatal(err)
	}
	if head.Snapshot != res2.Snapshot || len(head.Blocks) != 1 {
		t.Fatalf("head at snapshot %d blocks %v, want the reset's %d in one block", head.Snapshot, head.Blocks, res2.Snapshot)
	}

	// An outlier joins the timeline: it takes a position above zero.
	late := r.message("@alice:remote", "stored early")
	late.Outlier = true
	res3, err := s.CommitEvents(ctx, persistence.CommitRequest{
		RoomNID: r.nid, Epoch: res2.Epoch, Snapshot: res2.Snapshot, Blocks: res2.Blocks,
		Events: []persistence.NewEvent{late}, Extremities: []string{msg.EventID}, Depth: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	promoted := late
	promoted.Outlier, promoted.Promote = false, true
	res4, err := s.CommitEvents(ctx, persistence.CommitRequest{
		RoomNID: r.nid, Epoch: res3.Epoch, Snapshot: res3.Snapshot, Blocks: res3.Blocks,
		Events: []persistence.NewEvent{promoted}, Extremities: []string{late.EventID}, Depth: 11,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res4.StreamPos[0] <= 0 || res4.EventNIDs[0] != res3.EventNIDs[0] {
		t.Fatalf("promoted to position %d as NID %d, was NID %d", res4.StreamPos[0], res4.EventNIDs[0], res3.EventNIDs[0])
	}
	if max, err := s.MaxStreamPos(ctx); err != nil || max < res4.StreamPos[0] {
		t.Fatalf("MaxStreamPos %d after a promotion to %d (%v)", max, res4.StreamPos[0], err)
	}
	if _, err := s.CommitEvents(ctx, persistence.CommitRequest{
		RoomNID: r.nid, Epoch: res4.Epoch, Snapshot: res4.Snapshot, Blocks: res4.Blocks,
		Events: []persistence.NewEvent{promoted}, Extremities: []string{late.EventID}, Depth: 11,
	}); err == nil {
		t.Fatal("an event in the timeline was promoted again")
	}
	res2 = res4

	// A reset naming an event that is not stored writes nothing.
	bad := r.request()
	bad.Epoch, bad.Snapshot, bad.Blocks = res2.Epoch, res2.Snapshot, res2.Blocks
	bad.Extremities = []string{msg.EventID}
	bad.StateAfter = []persistence.StateRef{{Type: "m.room.create", EventID: "$nowhere"}}
	if _, err := s.CommitEvents(ctx, bad); err == nil {
		t.Fatal("a reset naming an unknown event committed")
	}
	assertCurrentState(t, s, r.nid, create.EventID, alice.EventID, leave.EventID, join.EventID)
}

func eventIDsOf(evs []persistence.StoredEvent) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.EventID
	}
	return ids
}

func sortStrings(s []string) []string { sort.Strings(s); return s }

func sortedIDs(ids ...string) []string { return sortStrings(ids) }

func assertCurrentState(t *testing.T, s persistence.Store, room persistence.RoomNID, want ...string) {
	t.Helper()
	evs, err := s.CurrentState(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	if got := sortStrings(eventIDsOf(evs)); !slices.Equal(got, sortedIDs(want...)) {
		t.Fatalf("current state = %v, want %v", got, sortedIDs(want...))
	}
}

func assertMembership(t *testing.T, s persistence.Store, room persistence.RoomNID, user, want string) {
	t.Helper()
	m, err := s.MembershipOf(context.Background(), room, user)
	if err != nil {
		t.Fatalf("membership of %s: %v", user, err)
	}
	if m.Membership != want {
		t.Fatalf("membership of %s = %s, want %s", user, m.Membership, want)
	}
}
