package storagetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// The RoomInspector reads: what verification tools see of a room.

func testRoomHeadDoesNotClaim(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!head:test")
	r.create(t, "@alice:test")
	r.mustCommit(t, r.message("@alice:test", "hello"))
	want := persistence.RoomHead{RoomNID: r.nid, RoomID: r.id, Version: r.version, Snapshot: r.snapshot,
		Blocks: r.blocks, Extremities: []string{r.events[len(r.events)-1]}, Depth: r.depth, Epoch: 1}
	for i := 0; i < 2; i++ {
		head, err := s.RoomHead(bg, r.id)
		noErr(t, "RoomHead", err)
		if fmt.Sprint(*head) != fmt.Sprint(want) {
			t.Fatalf("RoomHead = %+v, want %+v", *head, want)
		}
	}
	// The live activation can still commit: reading did not fence it off.
	r.mustCommit(t, r.message("@alice:test", "still mine"))
	claimed, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	head, err := s.RoomHead(bg, r.id)
	noErr(t, "RoomHead", err)
	if head.Epoch != claimed.Epoch || head.Epoch != 2 || !slices.Equal(head.Extremities, []string{r.events[len(r.events)-1]}) {
		t.Fatalf("RoomHead after a claim = %+v, want epoch 2 at %s", *head, r.events[len(r.events)-1])
	}
	_, err = s.RoomHead(bg, "!unknown:test")
	wantErr(t, "RoomHead of an unknown room", err, persistence.ErrNotFound)
}

func testRoomIDsPage(t *testing.T, s persistence.Store) {
	if ids, err := s.RoomIDs(bg, "", 10); err != nil || len(ids) != 0 {
		t.Fatalf("RoomIDs of an empty store = %v, %v", ids, err)
	}
	var want []string
	for _, id := range []string{"!c:test", "!a:test", "!e:test", "!b:test", "!d:test"} {
		newRoom(s, id).create(t, "@alice:test")
		want = append(want, id)
	}
	slices.Sort(want)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatalf("RoomIDs does not end: %v", got)
		}
		ids, err := s.RoomIDs(bg, after, 2)
		noErr(t, "RoomIDs", err)
		if len(ids) > 2 {
			t.Fatalf("RoomIDs with limit 2 returned %v", ids)
		}
		if len(ids) == 0 {
			break
		}
		got = append(got, ids...)
		after = ids[len(ids)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("RoomIDs pages = %v, want %v", got, want)
	}
	if ids, err := s.RoomIDs(bg, "!b:test", 0); err != nil || len(ids) != 0 {
		t.Fatalf("RoomIDs with limit 0 = %v, %v", ids, err)
	}
}

// blocksState resolves blocks the way snapshots are defined: for each
// tuple, the last block with an entry for it wins.
func blocksState(t *testing.T, s persistence.Store, blocks []persistence.StateBlockNID) map[tuple]string {
	t.Helper()
	entries, err := s.StateBlockEntries(bg, blocks)
	noErr(t, "StateBlockEntries", err)
	byBlock := map[persistence.StateBlockNID][]persistence.StateBlockEntry{}
	for i, e := range entries {
		switch {
		case !slices.Contains(blocks, e.Block):
			t.Fatalf("StateBlockEntries(%v) returned an entry of block %d", blocks, e.Block)
		case e.EventNID <= 0 || e.EventID == "":
			t.Fatalf("entry %+v lacks its event", e)
		case i > 0 && e.Block != entries[i-1].Block && byBlock[e.Block] != nil:
			t.Fatalf("the entries of block %d are not together", e.Block)
		}
		byBlock[e.Block] = append(byBlock[e.Block], e)
	}
	state := map[tuple]string{}
	for _, b := range blocks {
		if len(byBlock[b]) == 0 {
			t.Fatalf("StateBlockEntries(%v) returned nothing for block %d", blocks, b)
		}
		for _, e := range byBlock[b] {
			state[tuple{e.Type, e.StateKey}] = e.EventID
		}
	}
	return state
}

func testSnapshotBlocksDescribeTheState(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!blocks:test")
	res := r.create(t, "@alice:test")
	blocks, err := s.SnapshotBlocks(bg, res.Snapshot)
	noErr(t, "SnapshotBlocks", err)
	if !slices.Equal(blocks, res.Blocks) {
		t.Fatalf("SnapshotBlocks = %v, want %v", blocks, res.Blocks)
	}
	if got := blocksState(t, s, blocks); !maps.Equal(got, r.state) {
		t.Fatalf("blocks state %v, want %v", sorted(got), sorted(r.state))
	}
	// Overrides and compaction: every snapshot's blocks resolve to the
	// state the room had.
	snapshots := map[persistence.StateSnapshotNID]map[tuple]string{res.Snapshot: maps.Clone(r.state)}
	for i := 0; i < persistence.MaxSnapshotBlocks+10; i++ {
		ev := r.member(fmt.Sprintf("@u%d:test", i%20), []string{"join", "leave"}[i/20%2])
		if i%5 == 0 {
			ev = r.event("m.room.topic", ptr(""), "@alice:test", fmt.Sprintf(`{"topic":"t%d"}`, i))
		}
		res := r.mustCommit(t, ev)
		snapshots[res.Snapshot] = maps.Clone(r.state)
	}
	compacted := false
	for snap, want := range snapshots {
		blocks, err := s.SnapshotBlocks(bg, snap)
		noErr(t, "SnapshotBlocks", err)
		compacted = compacted || len(blocks) == 1 && len(want) > 1
		if got := blocksState(t, s, blocks); !maps.Equal(got, want) {
			t.Fatalf("snapshot %d: blocks %v resolve to %v, want %v", snap, blocks, sorted(got), sorted(want))
		}
	}
	if !compacted {
		t.Fatal("no snapshot was compacted")
	}
	if blocks, err := s.SnapshotBlocks(bg, 0); err != nil || len(blocks) != 0 {
		t.Fatalf("SnapshotBlocks(0) = %v, %v", blocks, err)
	}
	_, err = s.SnapshotBlocks(bg, 1<<40)
	wantErr(t, "SnapshotBlocks of an unknown snapshot", err, persistence.ErrNotFound)
	if entries, err := s.StateBlockEntries(bg, []persistence.StateBlockNID{1 << 40}); err != nil || len(entries) != 0 {
		t.Fatalf("StateBlockEntries of an unknown block = %v, %v", entries, err)
	}
	if entries, err := s.StateBlockEntries(bg, nil); err != nil || len(entries) != 0 {
		t.Fatalf("StateBlockEntries(nil) = %v, %v", entries, err)
	}
}

func testRoomMemberships(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!members:test")
	r.create(t, "@alice:test")
	other := newRoom(s, "!other:test")
	other.create(t, "@dave:test")
	r.mustCommit(t, r.member("@carol:test", "invite"), r.member("@bob:test", "join"))
	res := r.mustCommit(t, r.member("@carol:test", "join"), r.member("@bob:test", "leave"))
	ms, err := s.RoomMemberships(bg, r.nid)
	noErr(t, "RoomMemberships", err)
	var got []string
	for _, m := range ms {
		if m.RoomID != r.id || m.RoomNID != r.nid {
			t.Fatalf("membership %+v is not of room %s", m, r.id)
		}
		got = append(got, fmt.Sprintf("%s=%s@%s", m.UserID, m.Membership, m.EventID))
	}
	want := []string{
		"@alice:test=join@" + r.events[1],
		"@bob:test=leave@" + r.events[len(r.events)-1],
		"@carol:test=join@" + r.events[len(r.events)-2],
	}
	if !slices.Equal(got, want) {
		t.Fatalf("RoomMemberships = %v, want %v", got, want)
	}
	if ms[1].StreamPos != res.StreamPos[1] || ms[1].EventNID != res.EventNIDs[1] {
		t.Fatalf("bob's membership %+v, want position %d and NID %d", ms[1], res.StreamPos[1], res.EventNIDs[1])
	}
	if ms, err := s.RoomMemberships(bg, 1<<40); err != nil || len(ms) != 0 {
		t.Fatalf("RoomMemberships of an unknown room = %v, %v", ms, err)
	}
}
