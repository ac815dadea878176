// Package storagetest is the one conformance suite every persistence
// backend passes: Run it from the backend's tests with a function that opens
// an empty store.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// Run runs the suite. open must return a new, empty store, closed when its
// test ends; every subtest opens its own, and subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) persistence.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s persistence.Store)
	}{
		{"CreatingARoomStoresItsEventsAndState", testCreateRoom},
		{"EveryEventRecordsTheStateBeforeIt", testStateBefore},
		{"LaterStateOverridesEarlierState", testStateOverrides},
		{"SnapshotsCompactPastMaxSnapshotBlocks", testCompaction},
		{"ClaimingARoomFencesOffTheOlderActivation", testFencing},
		{"ClaimRoomOfUnknownRoomIsNotFound", testClaimUnknownRoom},
		{"CreatingAnExistingRoomIsErrRoomExists", testRoomExists},
		{"CommitMustBuildOnTheHeadsState", testCommitChecksHead},
		{"CommitToUnknownRoomIsNotFound", testCommitUnknownRoom},
		{"MalformedCommitRequestsAreRejected", testBadRequests},
		{"FailedCommitLeavesNothingBehind", testFailedCommit},
		{"TxnIDsMapToTheirEventPerDevice", testTxnLookup},
		{"MembershipsFollowMemberEvents", testMemberships},
		{"ForgettingLastsUntilMembershipChanges", testForget},
		{"RoomEventsPaginateBothWays", testRoomEvents},
		{"RoomsWithEventsAndStateEventsBetweenRespectBounds", testRangeReads},
		{"UnknownEventsAndRoomsAreNotFound", testNotFound},
		{"MaxStreamPosNeverPassesAnUncommittedEvent", testMaxStreamPosConcurrent},
		{"AccountsAreCreatedOnceWithAnEmptyProfile", testAccounts},
		{"DevicesAreFoundByTokenHash", testDevices},
		{"DevicesAreRenamedAndDeletedInBulk", testDeviceManagement},
		{"ProfilesAreUpdated", testProfiles},
		{"RoomHeadReadsWithoutClaiming", testRoomHeadDoesNotClaim},
		{"RoomIDsPageInOrder", testRoomIDsPage},
		{"SnapshotBlocksResolveToTheState", testSnapshotBlocksDescribeTheState},
		{"RoomMembershipsListEveryMemberOfTheRoom", testRoomMemberships},
		{"ServerJoinedMatchesTheServerNameExactly", testServerJoined},
		{"PingFailsWhenTheSchemaIsNotThisBuilds", testPing},
		{"AccountsListInPages", testListAccountsPages},
		{"DeactivatingAnAccountDeletesItsDevices", testDeactivateAccount},
		{"AccountDataSharesTheEventStream", testAccountData},
		{"ReceiptsReplacePerTypeAndThread", testReceipts},
		{"StreamRowsTakeDistinctPositionsConcurrently", testStreamRowsUnderConcurrency},
		{"LatestReadReceiptAndJoinedMemberCount", testReadReceiptAndMemberCount},
		{"DeviceKeysOneTimeKeysAndFallbackKeys", testDeviceKeysAndOneTimeKeys},
		{"DeviceListChangesReachThoseWhoShareARoom", testDeviceListChanges},
		{"ToDeviceMessagesAreReadAndAcknowledged", testToDevice},
		{"DeletedDevicesKeysArePruned", testPruneDeviceKeys},
		{"CrossSigningKeysAreReplacedPerUsage", testCrossSigningKeys},
		{"CrossSigningSignaturesAreDeviceListChangesOfTheirTarget", testCrossSigningSignatures},
		{"KeyBackupVersionsAreNeverReused", testKeyBackupVersions},
		{"KeyBackupKeepsTheBetterKeyOfASession", testKeyBackupSessions},
		{"RedactionsMarkTheEventTheyRedact", testRedactions},
		{"OutliersAndStateResets", testOutliersAndStateResets},
		{"RelationsAreFoundByParentRelTypeAndEventType", testRelations},
		{"ThreadsListByLatestReply", testThreads},
		{"BundledRelationsOfAPage", testBundledRelations},
		{"EventsAreFoundNearATimestamp", testEventsNearTimestamp},
		{"SearchFindsWordsOfBodiesNamesAndTopicsButNotRedactedOnes", testSearch},
		{"MediaIsKeyedByServerNameAndMediaID", testMedia},
		{"ThumbnailsAreKeptOncePerSizeAndMethod", testMediaThumbnails},
		{"RoomAliasesMapToOneRoomEach", testRoomAliases},
		{"ConcurrentInsertsOfOneAliasLetOneWin", testRoomAliasRace},
		{"PublicRoomsListByJoinedMembers", testPublicRooms},
		{"UpgradedRoomsTakeOverAliasesAndPublication", testReplaceRoomInDirectory},
		{"LocalUsersAreSearchedByIDAndDisplayName", testSearchLocalUsers},
		{"RemoteServerKeysAreKeptAndUpdated", testServerKeys},
		{"PushersAreUniquePerAppAndPushkeyAndGoWithTheirDevice", testPushers},
		{"PushersOfJoinedMembersAreOneQuery", testPushersOfJoinedMembers},
		{"EventsInRoomsReadNewestFirst", testEventsInRooms},
		{"FederationQueueKeepsEachDestinationsPDUsAndEDUsInOrder", testFederationQueue},
		{"FederationQueueHoldsOnlyCommittedEvents", testFederationQueueOnlyCommitted},
		{"FederationQueueTakesARoomOnManyServers", testFederationQueueManyDestinations},
		{"JoinedServersAreTheServersOfJoinedMembers", testJoinedServers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var bg = context.Background()

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testCreateRoom(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!create:test")
	res := r.create(t, "@alice:test")
	if res.RoomNID <= 0 || res.Epoch != 1 || res.Snapshot <= 0 || len(res.Blocks) != 4 {
		t.Fatalf("result %+v, want a room NID, epoch 1, a snapshot and 4 blocks", res)
	}
	for i := 1; i < len(res.StreamPos); i++ {
		if res.StreamPos[i] <= res.StreamPos[i-1] || res.EventNIDs[i] == res.EventNIDs[i-1] {
			t.Fatalf("positions %v or NIDs %v do not increase", res.StreamPos, res.EventNIDs)
		}
	}
	if res.LastStream != res.StreamPos[3] {
		t.Fatalf("LastStream %d, want %d", res.LastStream, res.StreamPos[3])
	}
	msg := r.mustCommit(t, r.message("@alice:test", "hello"), r.message("@alice:test", "again"))
	if msg.Snapshot != res.Snapshot || !slices.Equal(msg.Blocks, res.Blocks) || msg.Epoch != 1 {
		t.Fatalf("messages moved the state: %+v after %+v", msg, res)
	}
	if max, err := s.MaxStreamPos(bg); err != nil || max != msg.LastStream {
		t.Fatalf("MaxStreamPos = %d, %v; want %d", max, err, msg.LastStream)
	}

	nid, version, err := s.RoomInfo(bg, r.id)
	if err != nil || nid != r.nid || version != r.version {
		t.Fatalf("RoomInfo = %d, %q, %v; want %d, %q", nid, version, err, r.nid, r.version)
	}
	if got := r.stateOf(t, res.Snapshot); !maps.Equal(got, r.state) {
		t.Fatalf("snapshot state %v, want %v", sorted(got), sorted(r.state))
	}
	cur, err := s.CurrentState(bg, r.nid)
	noErr(t, "CurrentState", err)
	got := map[tuple]string{}
	for _, ev := range cur {
		r.checkStored(t, &ev)
		got[tuple{ev.Type, *ev.StateKey}] = ev.EventID
	}
	if !maps.Equal(got, r.state) {
		t.Fatalf("current state %v, want %v", sorted(got), sorted(r.state))
	}
	for k, id := range r.state {
		ev, err := s.CurrentStateEvent(bg, r.nid, k.Type, k.Key)
		if err != nil || ev.EventID != id {
			t.Fatalf("CurrentStateEvent(%v) = %v, %v; want %s", k, ev, err, id)
		}
		r.checkStored(t, ev)
		ev, err = s.StateEventAt(bg, res.Snapshot, k.Type, k.Key)
		if err != nil || ev.EventID != id {
			t.Fatalf("StateEventAt(%v) = %v, %v; want %s", k, ev, err, id)
		}
	}
	_, err = s.CurrentStateEvent(bg, r.nid, "m.room.member", "@nobody:test")
	wantErr(t, "CurrentStateEvent of absent state", err, persistence.ErrNotFound)
	_, err = s.CurrentStateEvent(bg, r.nid, "m.never.seen", "")
	wantErr(t, "CurrentStateEvent of unknown type", err, persistence.ErrNotFound)
	_, err = s.StateEventAt(bg, res.Snapshot, "m.room.topic", "")
	wantErr(t, "StateEventAt of absent state", err, persistence.ErrNotFound)

	head, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	want := persistence.RoomHead{RoomNID: r.nid, RoomID: r.id, Version: r.version, Snapshot: r.snapshot,
		Blocks: r.blocks, Extremities: []string{r.events[len(r.events)-1]}, Depth: r.depth, Epoch: 2}
	if fmt.Sprint(*head) != fmt.Sprint(want) {
		t.Fatalf("head %+v, want %+v", *head, want)
	}
}

func testStateBefore(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!before:test")
	r.create(t, "@alice:test")
	r.mustCommit(t, r.message("@alice:test", "one"))
	// A batch mixing state and messages: each message sees the state
	// changes before it in the batch.
	r.mustCommit(t,
		r.member("@bob:test", "join"),
		r.message("@bob:test", "hi"),
		r.event("m.room.topic", ptr(""), "@alice:test", `{"topic":"t1"}`),
		r.message("@alice:test", "topic set"),
		r.event("m.room.topic", ptr(""), "@alice:test", `{"topic":"t2"}`),
	)
	r.mustCommit(t, r.message("@bob:test", "last"))
	r.checkStateBefore(t)
}

func testStateOverrides(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!override:test")
	r.create(t, "@alice:test")
	first := r.snapshot
	r.mustCommit(t, r.event("m.room.join_rules", ptr(""), "@alice:test", `{"join_rule":"invite"}`))
	r.mustCommit(t, r.member("@bob:test", "invite"))
	r.mustCommit(t, r.member("@bob:test", "join"), r.member("@bob:test", "leave"))
	r.mustCommit(t, r.event("m.room.join_rules", ptr(""), "@alice:test", `{"join_rule":"knock"}`))
	if got := r.stateOf(t, r.snapshot); !maps.Equal(got, r.state) {
		t.Fatalf("state %v, want %v", sorted(got), sorted(r.state))
	}
	if len(r.state) != 5 {
		t.Fatalf("expected state has %d entries, want 5", len(r.state))
	}
	old, err := s.StateEventAt(bg, first, "m.room.join_rules", "")
	noErr(t, "StateEventAt(first)", err)
	now, err := s.StateEventAt(bg, r.snapshot, "m.room.join_rules", "")
	noErr(t, "StateEventAt(now)", err)
	if old.EventID == now.EventID || now.EventID != r.state[tuple{"m.room.join_rules", ""}] {
		t.Fatalf("join rules at first %s, now %s; want the original then %s", old.EventID, now.EventID, r.state[tuple{"m.room.join_rules", ""}])
	}
	ev, err := s.CurrentStateEvent(bg, r.nid, "m.room.member", "@bob:test")
	if err != nil || ev.EventID != r.state[tuple{"m.room.member", "@bob:test"}] {
		t.Fatalf("bob's current membership event %v, %v; want the leave", ev, err)
	}
	r.checkStateBefore(t)
}

func testCompaction(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!compact:test")
	r.create(t, "@alice:test")
	compactions := 0
	step := func(res *persistence.CommitResult) {
		t.Helper()
		if len(res.Blocks) == 0 || len(res.Blocks) > persistence.MaxSnapshotBlocks {
			t.Fatalf("snapshot %d has %d blocks", res.Snapshot, len(res.Blocks))
		}
		if len(res.Blocks) == 1 {
			compactions++
		}
	}
	// 140 state changes, one per commit: members joining, and a topic that
	// keeps changing (overrides that compaction must resolve).
	for i := 0; i < 140; i++ {
		ev := r.member(fmt.Sprintf("@u%d:test", i%100), "join")
		if i%7 == 0 {
			ev = r.event("m.room.topic", ptr(""), "@alice:test", fmt.Sprintf(`{"topic":"t%d"}`, i))
		}
		step(r.mustCommit(t, ev))
	}
	// And a batch that crosses a compaction: state before each event must
	// still be exact.
	var batch []persistence.NewEvent
	for i := 0; i < 70; i++ {
		batch = append(batch, r.member(fmt.Sprintf("@v%d:test", i), "join"))
		if i%10 == 0 {
			batch = append(batch, r.message("@alice:test", fmt.Sprintf("m%d", i)))
		}
	}
	step(r.mustCommit(t, batch...))
	if compactions < 2 {
		t.Fatalf("%d commits produced a compacted snapshot, want at least 2", compactions)
	}
	if got := r.stateOf(t, r.snapshot); !maps.Equal(got, r.state) {
		t.Fatalf("final state has %d entries, want %d:\n got %v\nwant %v", len(got), len(r.state), sorted(got), sorted(r.state))
	}
	r.checkStateBefore(t)
	head, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	if head.Snapshot != r.snapshot || !slices.Equal(head.Blocks, r.blocks) {
		t.Fatalf("head at snapshot %d blocks %v, want %d %v", head.Snapshot, head.Blocks, r.snapshot, r.blocks)
	}
}

func testFencing(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!fence:test")
	r.create(t, "@alice:test")
	r.mustCommit(t, r.message("@alice:test", "before the claims"))
	h1, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	h2, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	if h1.Epoch != 2 || h2.Epoch != 3 {
		t.Fatalf("claims got epochs %d and %d, want 2 and 3", h1.Epoch, h2.Epoch)
	}
	maxBefore, _ := s.MaxStreamPos(bg)
	for _, epoch := range []int64{1, h1.Epoch} {
		stale := *r
		stale.epoch = epoch
		ev := stale.member("@bob:test", "join")
		ev.Txn = &persistence.TxnKey{UserID: "@bob:test", DeviceID: "D", TxnID: "t1"}
		_, err := stale.s.CommitEvents(bg, stale.request(ev))
		wantErr(t, fmt.Sprintf("commit with epoch %d", epoch), err, persistence.ErrFenced)
		_, err = s.EventByID(bg, ev.EventID)
		wantErr(t, "fenced event", err, persistence.ErrNotFound)
		_, err = s.LookupTxn(bg, *ev.Txn)
		wantErr(t, "fenced txn", err, persistence.ErrNotFound)
		_, err = s.MembershipOf(bg, r.nid, "@bob:test")
		wantErr(t, "fenced membership", err, persistence.ErrNotFound)
	}
	if max, _ := s.MaxStreamPos(bg); max != maxBefore {
		t.Fatalf("MaxStreamPos moved from %d to %d on fenced commits", maxBefore, max)
	}
	h3, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	if !slices.Equal(h3.Extremities, h1.Extremities) || h3.Snapshot != h1.Snapshot || h3.Depth != h1.Depth {
		t.Fatalf("fenced commits changed the head: %+v, was %+v", h3, h1)
	}
	// The live activation commits.
	r.epoch = h3.Epoch
	res := r.mustCommit(t, r.member("@bob:test", "join"))
	if res.Epoch != h3.Epoch {
		t.Fatalf("commit returned epoch %d, want %d", res.Epoch, h3.Epoch)
	}
	r.checkStateBefore(t)
}

func testClaimUnknownRoom(t *testing.T, s persistence.Store) {
	_, err := s.ClaimRoom(bg, "!nowhere:test")
	wantErr(t, "ClaimRoom", err, persistence.ErrNotFound)
}

func testRoomExists(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!exists:test")
	r.create(t, "@alice:test")
	again := newRoom(s, r.id)
	again.n = 100 // distinct event IDs: only the room clashes
	_, err := again.commit(bg, again.event("m.room.create", ptr(""), "@mallory:test", `{}`), again.member("@mallory:test", "join"))
	wantErr(t, "second creation", err, persistence.ErrRoomExists)
	_, err = s.EventByID(bg, "$exists:test-101")
	wantErr(t, "event of the failed creation", err, persistence.ErrNotFound)
	_, err = s.MembershipOf(bg, r.nid, "@mallory:test")
	wantErr(t, "membership of the failed creation", err, persistence.ErrNotFound)
	r.checkStateBefore(t)
}

func testCommitChecksHead(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!head:test")
	res := r.create(t, "@alice:test")
	r.mustCommit(t, r.member("@bob:test", "join"))
	stale := *r
	stale.snapshot, stale.blocks = res.Snapshot, res.Blocks
	ev := stale.message("@alice:test", "on old state")
	if _, err := stale.s.CommitEvents(bg, stale.request(ev)); err == nil {
		t.Fatal("a commit building on an old snapshot succeeded")
	}
	_, err := s.EventByID(bg, ev.EventID)
	wantErr(t, "rejected event", err, persistence.ErrNotFound)
	r.n = stale.n
	r.mustCommit(t, r.message("@alice:test", "on the head"))
	r.checkStateBefore(t)
}

func testCommitUnknownRoom(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!ghost:test")
	r.nid, r.epoch = 4242, 1
	_, err := r.commit(bg, r.message("@alice:test", "boo"))
	wantErr(t, "commit to unknown room NID", err, persistence.ErrNotFound)
}

func testBadRequests(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!bad:test")
	r.create(t, "@alice:test")
	noState := r.message("@alice:test", "x")
	noState.Membership = "join"
	for name, req := range map[string]persistence.CommitRequest{
		"no room":                      {Epoch: 1, Events: []persistence.NewEvent{r.message("@a:test", "x")}},
		"new room with a NID":          {NewRoom: &persistence.NewRoom{RoomID: "!n:test", Version: "10"}, RoomNID: r.nid},
		"new room without a version":   {NewRoom: &persistence.NewRoom{RoomID: "!n:test"}},
		"membership without state key": r.request(noState),
		"event without ID":             r.request(persistence.NewEvent{Type: "m.room.message", JSON: []byte("{}")}),
	} {
		if _, err := s.CommitEvents(bg, req); err == nil {
			t.Errorf("%s: commit succeeded", name)
		}
	}
	if _, _, err := s.RoomInfo(bg, "!n:test"); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("a rejected new room was stored: %v", err)
	}
	r.mustCommit(t, r.message("@alice:test", "still fine"))
	r.checkStateBefore(t)
}

func testFailedCommit(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!fail:test")
	r.create(t, "@alice:test")
	r.mustCommit(t, r.message("@alice:test", "one"))
	maxBefore, _ := s.MaxStreamPos(bg)
	head, _ := s.ClaimRoom(bg, r.id)
	r.epoch = head.Epoch

	// A batch that introduces a new type and state key, changes state and
	// memberships, records a txn, then fails on a duplicate event ID.
	bad := *r
	newState := bad.event("m.custom.state", ptr("@new:test"), "@alice:test", `{}`)
	join := bad.member("@carol:test", "join")
	join.Txn = &persistence.TxnKey{UserID: "@carol:test", DeviceID: "D", TxnID: "t"}
	dup := bad.message("@alice:test", "dup")
	dup.EventID = r.events[0]
	_, err := bad.s.CommitEvents(bg, bad.request(newState, join, bad.message("@carol:test", "hi"), dup))
	if err == nil {
		t.Fatal("a batch with a duplicate event ID committed")
	}
	for _, id := range []string{newState.EventID, join.EventID} {
		_, err := s.EventByID(bg, id)
		wantErr(t, "event of the failed batch", err, persistence.ErrNotFound)
	}
	_, err = s.LookupTxn(bg, *join.Txn)
	wantErr(t, "txn of the failed batch", err, persistence.ErrNotFound)
	_, err = s.MembershipOf(bg, r.nid, "@carol:test")
	wantErr(t, "membership of the failed batch", err, persistence.ErrNotFound)
	_, err = s.CurrentStateEvent(bg, r.nid, "m.custom.state", "@new:test")
	wantErr(t, "state of the failed batch", err, persistence.ErrNotFound)
	if max, _ := s.MaxStreamPos(bg); max != maxBefore {
		t.Fatalf("MaxStreamPos moved from %d to %d on a failed commit", maxBefore, max)
	}
	h, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	if h.Snapshot != r.snapshot || h.Depth != r.depth || !slices.Equal(h.Extremities, []string{r.events[len(r.events)-1]}) {
		t.Fatalf("the failed batch moved the head: %+v", h)
	}
	r.epoch = h.Epoch
	// NIDs the failed batch assigned were rolled back: new strings (taking
	// whatever NIDs are free now) and then the failed batch's own must map
	// to the right rows.
	r.n = bad.n
	r.mustCommit(t, r.event("m.other.state", ptr("@other:test"), "@alice:test", `{}`))
	r.mustCommit(t, r.event("m.custom.state", ptr("@new:test"), "@alice:test", `{}`), r.member("@carol:test", "join"))
	for _, k := range []tuple{{"m.other.state", "@other:test"}, {"m.custom.state", "@new:test"}, {"m.room.member", "@carol:test"}} {
		ev, err := s.CurrentStateEvent(bg, r.nid, k.Type, k.Key)
		if err != nil || ev.EventID != r.state[k] || ev.Type != k.Type || *ev.StateKey != k.Key {
			t.Fatalf("CurrentStateEvent(%v) = %+v, %v; want %s", k, ev, err, r.state[k])
		}
	}
	if got := r.stateOf(t, r.snapshot); !maps.Equal(got, r.state) {
		t.Fatalf("state %v, want %v", sorted(got), sorted(r.state))
	}
	r.checkStateBefore(t)
}

func testTxnLookup(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!txn:test")
	r.create(t, "@alice:test")
	key := persistence.TxnKey{UserID: "@alice:test", DeviceID: "PHONE", TxnID: "m1"}
	ev := r.message("@alice:test", "once")
	ev.Txn = &key
	r.mustCommit(t, ev)
	id, err := s.LookupTxn(bg, key)
	if err != nil || id != ev.EventID {
		t.Fatalf("LookupTxn = %q, %v; want %s", id, err, ev.EventID)
	}
	if txn, err := s.TxnIDForEvent(bg, ev.EventID, key.UserID, key.DeviceID); err != nil || txn != key.TxnID {
		t.Fatalf("TxnIDForEvent = %q, %v; want %s", txn, err, key.TxnID)
	}
	_, err = s.TxnIDForEvent(bg, ev.EventID, key.UserID, "LAPTOP")
	wantErr(t, "TxnIDForEvent from another device", err, persistence.ErrNotFound)
	for _, other := range []persistence.TxnKey{
		{UserID: "@alice:test", DeviceID: "LAPTOP", TxnID: "m1"},
		{UserID: "@bob:test", DeviceID: "PHONE", TxnID: "m1"},
		{UserID: "@alice:test", DeviceID: "PHONE", TxnID: "m2"},
	} {
		_, err := s.LookupTxn(bg, other)
		wantErr(t, fmt.Sprintf("LookupTxn(%+v)", other), err, persistence.ErrNotFound)
	}
	// The same txn ID from another device is another transaction.
	ev2 := r.message("@alice:test", "other device")
	ev2.Txn = &persistence.TxnKey{UserID: "@alice:test", DeviceID: "LAPTOP", TxnID: "m1"}
	r.mustCommit(t, ev2)
	if id, _ := s.LookupTxn(bg, *ev2.Txn); id != ev2.EventID {
		t.Fatalf("LookupTxn(laptop) = %q, want %s", id, ev2.EventID)
	}
}

func testMemberships(t *testing.T, s persistence.Store) {
	a := newRoom(s, "!ma:test")
	a.create(t, "@alice:test")
	b := newRoom(s, "!mb:test")
	b.create(t, "@bob:test")
	a.mustCommit(t, a.member("@bob:test", "invite"))
	b.mustCommit(t, b.member("@alice:test", "invite"))
	resA := a.mustCommit(t, a.member("@bob:test", "join"))
	resB := b.mustCommit(t, b.member("@alice:test", "join"), b.member("@alice:test", "leave"))

	m, err := s.MembershipOf(bg, a.nid, "@bob:test")
	noErr(t, "MembershipOf", err)
	want := persistence.Membership{RoomID: a.id, RoomNID: a.nid, UserID: "@bob:test", Membership: "join",
		EventID: a.events[len(a.events)-1], EventNID: resA.EventNIDs[0], StreamPos: resA.StreamPos[0]}
	if *m != want {
		t.Fatalf("MembershipOf = %+v, want %+v", *m, want)
	}
	ms, err := s.MembershipsForUser(bg, "@alice:test")
	noErr(t, "MembershipsForUser", err)
	got := map[string]persistence.Membership{}
	for _, m := range ms {
		got[m.RoomID] = m
	}
	if len(ms) != 2 || got[a.id].Membership != "join" || got[b.id].Membership != "leave" ||
		got[b.id].StreamPos != resB.StreamPos[1] || got[b.id].EventNID != resB.EventNIDs[1] || got[b.id].EventID != b.events[len(b.events)-1] {
		t.Fatalf("alice's memberships %+v", ms)
	}
	if ms, err := s.MembershipsForUser(bg, "@nobody:test"); err != nil || len(ms) != 0 {
		t.Fatalf("MembershipsForUser(nobody) = %v, %v", ms, err)
	}
	_, err = s.MembershipOf(bg, b.nid, "@carol:test")
	wantErr(t, "MembershipOf never a member", err, persistence.ErrNotFound)
}

func testForget(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!forget:test")
	r.create(t, "@alice:test")
	r.mustCommit(t, r.member("@bob:test", "join"))
	r.mustCommit(t, r.member("@bob:test", "leave"))
	noErr(t, "ForgetRoom", s.ForgetRoom(bg, r.nid, "@bob:test"))
	forgotten := func() bool {
		t.Helper()
		m, err := s.MembershipOf(bg, r.nid, "@bob:test")
		noErr(t, "MembershipOf", err)
		return m.Forgotten
	}
	if !forgotten() {
		t.Fatal("ForgetRoom did not mark the room forgotten")
	}
	r.mustCommit(t, r.member("@bob:test", "leave")) // e.g. a kick reason edit: still left
	if !forgotten() {
		t.Fatal("an unchanged membership reset forgotten")
	}
	r.mustCommit(t, r.member("@bob:test", "join"))
	if forgotten() {
		t.Fatal("joining again kept the room forgotten")
	}
	err := s.ForgetRoom(bg, r.nid, "@carol:test")
	wantErr(t, "ForgetRoom without membership", err, persistence.ErrNotFound)
}

func testRoomEvents(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!page:test")
	r.create(t, "@alice:test")
	other := newRoom(s, "!noise:test")
	other.create(t, "@bob:test")
	for i := 0; i < 20; i++ {
		r.mustCommit(t, r.message("@alice:test", fmt.Sprint(i)))
		other.mustCommit(t, other.message("@bob:test", fmt.Sprint(i)))
	}
	max, err := s.MaxStreamPos(bg)
	noErr(t, "MaxStreamPos", err)
	all := r.events // 24 events, in order

	// Forward pages of 5 from the start.
	var got []string
	from := persistence.StreamPos(0)
	for pages := 0; ; pages++ {
		evs, err := s.RoomEvents(bg, r.nid, from, max, 5, true)
		noErr(t, "RoomEvents forward", err)
		if len(evs) == 0 {
			break
		}
		if len(evs) > 5 || pages > 10 {
			t.Fatalf("page of %d events (page %d)", len(evs), pages)
		}
		for _, ev := range evs {
			r.checkStored(t, &ev)
		}
		got = append(got, eventIDs(evs)...)
		from = evs[len(evs)-1].StreamPos
	}
	if !slices.Equal(got, all) {
		t.Fatalf("forward pages gave %v, want %v", got, all)
	}
	// Backward pages of 7 from the end.
	got = nil
	to := max
	for {
		evs, err := s.RoomEvents(bg, r.nid, 0, to, 7, false)
		noErr(t, "RoomEvents backward", err)
		if len(evs) == 0 {
			break
		}
		got = append(got, eventIDs(evs)...)
		to = evs[len(evs)-1].StreamPos - 1
	}
	slices.Reverse(got)
	if !slices.Equal(got, all) {
		t.Fatalf("backward pages gave %v, want %v", got, all)
	}
	// Bounds: from is exclusive, to inclusive.
	p := func(i int) persistence.StreamPos { return r.pos[all[i]] }
	evs, err := s.RoomEvents(bg, r.nid, p(4), p(8), 100, true)
	noErr(t, "RoomEvents", err)
	if ids := eventIDs(evs); !slices.Equal(ids, all[5:9]) {
		t.Fatalf("RoomEvents(%d, %d] = %v, want %v", p(4), p(8), ids, all[5:9])
	}
	evs, err = s.RoomEvents(bg, r.nid, p(4), p(8), 2, false)
	noErr(t, "RoomEvents", err)
	if ids := eventIDs(evs); !slices.Equal(ids, []string{all[8], all[7]}) {
		t.Fatalf("RoomEvents backward limit 2 = %v, want %v", ids, []string{all[8], all[7]})
	}
	if evs, err := s.RoomEvents(bg, r.nid, 0, max, 0, true); err != nil || len(evs) != 0 {
		t.Fatalf("limit 0 gave %d events, %v", len(evs), err)
	}
	if evs, err := s.RoomEvents(bg, r.nid, max, max, 10, true); err != nil || len(evs) != 0 {
		t.Fatalf("empty range gave %d events, %v", len(evs), err)
	}
}

func testRangeReads(t *testing.T, s persistence.Store) {
	a := newRoom(s, "!ra:test")
	a.create(t, "@alice:test")
	b := newRoom(s, "!rb:test")
	b.create(t, "@bob:test")
	c := newRoom(s, "!rc:test")
	c.create(t, "@carol:test")
	mark, _ := s.MaxStreamPos(bg)
	a.mustCommit(t, a.message("@alice:test", "x"))
	resB := b.mustCommit(t, b.member("@dave:test", "join"), b.message("@dave:test", "y"), b.event("m.room.name", ptr(""), "@bob:test", `{"name":"B"}`))
	end, _ := s.MaxStreamPos(bg)

	rooms, err := s.RoomsWithEvents(bg, []persistence.RoomNID{a.nid, b.nid, c.nid}, mark, end)
	noErr(t, "RoomsWithEvents", err)
	slices.Sort(rooms)
	want := []persistence.RoomNID{a.nid, b.nid}
	slices.Sort(want)
	if !slices.Equal(rooms, want) {
		t.Fatalf("RoomsWithEvents = %v, want %v", rooms, want)
	}
	rooms, err = s.RoomsWithEvents(bg, []persistence.RoomNID{a.nid, c.nid}, resB.StreamPos[0], end)
	if err != nil || len(rooms) != 0 {
		t.Fatalf("RoomsWithEvents after a's message = %v, %v; want none", rooms, err)
	}
	rooms, err = s.RoomsWithEvents(bg, []persistence.RoomNID{b.nid}, resB.StreamPos[2]-1, resB.StreamPos[2])
	if err != nil || !slices.Equal(rooms, []persistence.RoomNID{b.nid}) {
		t.Fatalf("RoomsWithEvents of the last position = %v, %v", rooms, err)
	}
	if rooms, err := s.RoomsWithEvents(bg, nil, 0, end); err != nil || len(rooms) != 0 {
		t.Fatalf("RoomsWithEvents(no rooms) = %v, %v", rooms, err)
	}

	evs, err := s.StateEventsBetween(bg, b.nid, mark, end)
	noErr(t, "StateEventsBetween", err)
	wantIDs := []string{b.events[4], b.events[6]}
	if ids := eventIDs(evs); !slices.Equal(ids, wantIDs) {
		t.Fatalf("StateEventsBetween = %v, want %v", ids, wantIDs)
	}
	for _, ev := range evs {
		b.checkStored(t, &ev)
	}
	evs, err = s.StateEventsBetween(bg, b.nid, 0, mark)
	noErr(t, "StateEventsBetween", err)
	if ids := eventIDs(evs); !slices.Equal(ids, b.events[:4]) {
		t.Fatalf("StateEventsBetween(0, mark] = %v, want %v", ids, b.events[:4])
	}
}

func testNotFound(t *testing.T, s persistence.Store) {
	_, _, err := s.RoomInfo(bg, "!nowhere:test")
	wantErr(t, "RoomInfo", err, persistence.ErrNotFound)
	_, err = s.EventByID(bg, "$nothing")
	wantErr(t, "EventByID", err, persistence.ErrNotFound)
	_, err = s.SnapshotEvents(bg, 987654)
	wantErr(t, "SnapshotEvents of unknown snapshot", err, persistence.ErrNotFound)
	_, err = s.StateEventAt(bg, 987654, "m.room.create", "")
	wantErr(t, "StateEventAt of unknown snapshot", err, persistence.ErrNotFound)
	_, err = s.StateEventAt(bg, 0, "m.room.create", "")
	wantErr(t, "StateEventAt of snapshot 0", err, persistence.ErrNotFound)
	if evs, err := s.SnapshotEvents(bg, 0); err != nil || len(evs) != 0 {
		t.Fatalf("SnapshotEvents(0) = %v, %v; want nothing", evs, err)
	}
	if max, err := s.MaxStreamPos(bg); err != nil || max != 0 {
		t.Fatalf("MaxStreamPos of an empty store = %d, %v", max, err)
	}
}

// testMaxStreamPosConcurrent commits to many rooms at once while readers
// keep reading everything up to MaxStreamPos: once a reader has seen the
// events up to a position, no event may commit later at or below it.
func testMaxStreamPosConcurrent(t *testing.T, s persistence.Store) {
	const rooms, perRoom = 8, 25
	rs := make([]*room, rooms)
	nids := make([]persistence.RoomNID, rooms) // for the readers: rs belong to the writers
	for i := range rs {
		rs[i] = newRoom(s, fmt.Sprintf("!conc%d:test", i))
		rs[i].create(t, "@alice:test")
		nids[i] = rs[i].nid
	}
	type observation struct {
		max  persistence.StreamPos
		seen []persistence.StreamPos
	}
	var (
		obs     []observation
		done    = make(chan struct{})
		readers sync.WaitGroup
		readErr = make(chan error, 2)
	)
	var obsMu sync.Mutex
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var last persistence.StreamPos
			for {
				select {
				case <-done:
					return
				default:
				}
				max, err := s.MaxStreamPos(bg)
				if err != nil {
					readErr <- err
					return
				}
				if max < last {
					readErr <- fmt.Errorf("MaxStreamPos went back from %d to %d", last, max)
					return
				}
				last = max
				var seen []persistence.StreamPos
				for _, nid := range nids {
					evs, err := s.RoomEvents(bg, nid, 0, max, 1000, true)
					if err != nil {
						readErr <- err
						return
					}
					for _, ev := range evs {
						seen = append(seen, ev.StreamPos)
					}
				}
				obsMu.Lock()
				obs = append(obs, observation{max, seen})
				obsMu.Unlock()
			}
		}()
	}
	var writers sync.WaitGroup
	errs := make(chan error, rooms)
	for _, r := range rs {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < perRoom; i++ {
				if _, err := r.commit(bg, r.message("@alice:test", fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	writers.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("commit: %v", err)
	}
	select {
	case err := <-readErr:
		t.Fatalf("reader: %v", err)
	default:
	}

	var all []persistence.StreamPos
	for _, r := range rs {
		for _, p := range r.pos {
			all = append(all, p)
		}
	}
	slices.Sort(all)
	if len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatal("two events share a stream position")
	}
	max, _ := s.MaxStreamPos(bg)
	if max != all[len(all)-1] {
		t.Fatalf("MaxStreamPos after all commits = %d, want the highest position %d", max, all[len(all)-1])
	}
	if len(obs) == 0 {
		t.Fatal("the readers observed nothing")
	}
	for _, o := range obs {
		slices.Sort(o.seen)
		var want []persistence.StreamPos
		for _, p := range all {
			if p <= o.max {
				want = append(want, p)
			}
		}
		if !slices.Equal(o.seen, want) {
			t.Fatalf("at MaxStreamPos %d a reader saw %d events, but %d committed at or below it", o.max, len(o.seen), len(want))
		}
	}
	t.Logf("%d observations, %d events", len(obs), len(all))
}

func testAccounts(t *testing.T, s persistence.Store) {
	acc := persistence.Account{Localpart: "alice", PasswordHash: "$2a$hash", IsAdmin: true, CreatedTS: 1234}
	noErr(t, "CreateAccount", s.CreateAccount(bg, acc))
	err := s.CreateAccount(bg, persistence.Account{Localpart: "alice", PasswordHash: "other"})
	wantErr(t, "second CreateAccount", err, persistence.ErrUserExists)
	got, err := s.GetAccount(bg, "alice")
	if err != nil || *got != acc {
		t.Fatalf("GetAccount = %+v, %v; want %+v", got, err, acc)
	}
	_, err = s.GetAccount(bg, "bob")
	wantErr(t, "GetAccount(unknown)", err, persistence.ErrNotFound)
	noErr(t, "SetPasswordHash", s.SetPasswordHash(bg, "alice", "$2a$new"))
	if got, _ := s.GetAccount(bg, "alice"); got.PasswordHash != "$2a$new" {
		t.Fatalf("password hash %q after SetPasswordHash", got.PasswordHash)
	}
	wantErr(t, "SetPasswordHash(unknown)", s.SetPasswordHash(bg, "bob", "x"), persistence.ErrNotFound)
	p, err := s.GetProfile(bg, "alice")
	if err != nil || p != (persistence.Profile{}) {
		t.Fatalf("new account's profile = %+v, %v; want empty", p, err)
	}
}

func testDevices(t *testing.T, s persistence.Store) {
	noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: "alice", CreatedTS: 1}))
	phone := persistence.Device{Localpart: "alice", DeviceID: "PHONE", DisplayName: "Phone", CreatedTS: 10}
	laptop := persistence.Device{Localpart: "alice", DeviceID: "LAPTOP", DisplayName: "Laptop", CreatedTS: 20}
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, phone, "hash-phone-1"))
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, laptop, "hash-laptop"))
	d, err := s.DeviceByTokenHash(bg, "hash-phone-1")
	if err != nil || *d != phone {
		t.Fatalf("DeviceByTokenHash = %+v, %v; want %+v", d, err, phone)
	}
	// Logging in again on the phone replaces its token.
	phone2 := phone
	phone2.DisplayName, phone2.CreatedTS = "Phone (renamed)", 99
	noErr(t, "UpsertDevice again", s.UpsertDevice(bg, phone2, "hash-phone-2"))
	_, err = s.DeviceByTokenHash(bg, "hash-phone-1")
	wantErr(t, "old token", err, persistence.ErrNotFound)
	d, err = s.DeviceByTokenHash(bg, "hash-phone-2")
	if err != nil || d.DeviceID != "PHONE" || d.DisplayName != "Phone (renamed)" || d.CreatedTS != 10 {
		t.Fatalf("after re-login DeviceByTokenHash = %+v, %v; want the renamed phone created at 10", d, err)
	}
	devs, err := s.ListDevices(bg, "alice")
	noErr(t, "ListDevices", err)
	if len(devs) != 2 || devs[0].DeviceID != "LAPTOP" || devs[1].DeviceID != "PHONE" {
		t.Fatalf("ListDevices = %+v", devs)
	}
	if devs, err := s.ListDevices(bg, "bob"); err != nil || len(devs) != 0 {
		t.Fatalf("ListDevices(bob) = %v, %v", devs, err)
	}
	noErr(t, "DeleteDevice", s.DeleteDevice(bg, "alice", "LAPTOP"))
	_, err = s.DeviceByTokenHash(bg, "hash-laptop")
	wantErr(t, "deleted device's token", err, persistence.ErrNotFound)
	wantErr(t, "DeleteDevice again", s.DeleteDevice(bg, "alice", "LAPTOP"), persistence.ErrNotFound)
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, laptop, "hash-laptop-2"))
	noErr(t, "DeleteAllDevices", s.DeleteAllDevices(bg, "alice"))
	if devs, err := s.ListDevices(bg, "alice"); err != nil || len(devs) != 0 {
		t.Fatalf("after DeleteAllDevices: %v, %v", devs, err)
	}
	noErr(t, "DeleteAllDevices of nobody", s.DeleteAllDevices(bg, "nobody"))
}

func testProfiles(t *testing.T, s persistence.Store) {
	noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: "alice", CreatedTS: 1}))
	noErr(t, "SetDisplayName", s.SetDisplayName(bg, "alice", "Alice ✓"))
	noErr(t, "SetAvatarURL", s.SetAvatarURL(bg, "alice", "mxc://test/abc"))
	p, err := s.GetProfile(bg, "alice")
	if err != nil || p != (persistence.Profile{DisplayName: "Alice ✓", AvatarURL: "mxc://test/abc"}) {
		t.Fatalf("GetProfile = %+v, %v", p, err)
	}
	_, err = s.GetProfile(bg, "bob")
	wantErr(t, "GetProfile(unknown)", err, persistence.ErrNotFound)
	wantErr(t, "SetDisplayName(unknown)", s.SetDisplayName(bg, "bob", "B"), persistence.ErrNotFound)
	wantErr(t, "SetAvatarURL(unknown)", s.SetAvatarURL(bg, "bob", "mxc://x/y"), persistence.ErrNotFound)
}
