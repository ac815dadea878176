package storagetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// Account data and receipts share the events' stream: their positions
// interleave with events', MaxStreamPos covers them, and each read returns
// exactly the rows of its range.

func testAccountData(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice, bob = "@alice:x", "@bob:x"
	r := newRoom(s, "!ad:x")
	created := r.create(t, alice)
	afterRoom := created.StreamPos[len(created.StreamPos)-1]

	_, err := s.GetAccountData(ctx, alice, "", "m.push_rules")
	wantErr(t, "GetAccountData of nothing", err, persistence.ErrNotFound)

	put := func(user, room, typ, content string) persistence.StreamPos {
		t.Helper()
		p, err := s.PutAccountData(ctx, user, persistence.AccountData{RoomID: room, Type: typ, Content: json.RawMessage(content)})
		noErr(t, "PutAccountData", err)
		return p
	}
	p1 := put(alice, "", "im.vector.setting", `{"a":1}`)
	p2 := put(alice, r.id, "m.tag", `{"tags":{"u.work":{}}}`)
	put(bob, "", "im.vector.setting", `{"b":1}`)
	if p1 <= afterRoom || p2 <= p1 {
		t.Fatalf("positions %d, %d after the room's last event %d: want increasing, past the events", p1, p2, afterRoom)
	}
	if max, _ := s.MaxStreamPos(ctx); max < p2 {
		t.Fatalf("MaxStreamPos %d is behind committed account data at %d", max, p2)
	}
	got, err := s.GetAccountData(ctx, alice, r.id, "m.tag")
	noErr(t, "GetAccountData", err)
	if string(got) != `{"tags":{"u.work":{}}}` {
		t.Fatalf("room account data = %s", got)
	}

	// Replacing an entry moves it to a new position.
	p3 := put(alice, "", "im.vector.setting", `{"a":2}`)
	between, err := s.AccountDataBetween(ctx, alice, 0, p3)
	noErr(t, "AccountDataBetween", err)
	if len(between) != 2 || between[0].RoomID != r.id || between[1].StreamPos != p3 || string(between[1].Content) != `{"a":2}` {
		t.Fatalf("alice's account data = %+v, want the tag then the replaced setting", between)
	}
	since, err := s.AccountDataBetween(ctx, alice, p2, p3)
	noErr(t, "AccountDataBetween", err)
	if len(since) != 1 || since[0].Type != "im.vector.setting" {
		t.Fatalf("alice's account data after %d = %+v", p2, since)
	}
	// An event after account data takes a later position.
	res := r.mustCommit(t, r.message(alice, "hi"))
	if res.StreamPos[0] <= p3 {
		t.Fatalf("event at %d after account data at %d", res.StreamPos[0], p3)
	}
	if _, err := s.PutAccountData(ctx, alice, persistence.AccountData{Type: "x", Content: json.RawMessage("{")}); err == nil {
		t.Fatal("PutAccountData stored content that is not JSON")
	}
}

func testReceipts(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice, bob = "@alice:x", "@bob:x"
	r, other := newRoom(s, "!rc:x"), newRoom(s, "!rc2:x")
	r.create(t, alice)
	other.create(t, alice)
	msg := r.mustCommit(t, r.message(alice, "hi"))
	first := r.events[len(r.events)-1]

	put := func(rc persistence.Receipt) persistence.StreamPos {
		t.Helper()
		p, err := s.PutReceipt(ctx, rc)
		noErr(t, "PutReceipt", err)
		return p
	}
	p1 := put(persistence.Receipt{RoomNID: r.nid, UserID: bob, Type: "m.read", EventID: first, TS: 1000})
	if p1 <= msg.StreamPos[0] {
		t.Fatalf("receipt at %d, not after the event at %d", p1, msg.StreamPos[0])
	}
	put(persistence.Receipt{RoomNID: r.nid, UserID: bob, Type: "m.read", ThreadID: "main", EventID: first, TS: 1001})
	put(persistence.Receipt{RoomNID: other.nid, UserID: bob, Type: "m.read", EventID: "$elsewhere", TS: 1002})
	r.mustCommit(t, r.message(alice, "again"))
	second := r.events[len(r.events)-1]
	p4 := put(persistence.Receipt{RoomNID: r.nid, UserID: bob, Type: "m.read", EventID: second, TS: 2000})

	all, err := s.ReceiptsBetween(ctx, []persistence.RoomNID{r.nid}, 0, p4)
	noErr(t, "ReceiptsBetween", err)
	if len(all) != 2 || all[0].ThreadID != "main" || all[1].EventID != second || all[1].RoomID != r.id || all[1].TS != 2000 {
		t.Fatalf("receipts of %s = %+v, want the threaded one then bob's moved m.read", r.id, all)
	}
	since, err := s.ReceiptsBetween(ctx, []persistence.RoomNID{r.nid, other.nid}, p1, p4)
	noErr(t, "ReceiptsBetween", err)
	if len(since) != 3 {
		t.Fatalf("receipts in both rooms after %d = %+v, want 3", p1, since)
	}
	if none, err := s.ReceiptsBetween(ctx, nil, 0, p4); err != nil || len(none) != 0 {
		t.Fatalf("receipts of no room = %v, %v", none, err)
	}
}

// testStreamRowsUnderConcurrency writes account data, receipts and events
// at once: every position is distinct and MaxStreamPos only ever covers
// rows that are readable.
func testStreamRowsUnderConcurrency(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!mix:x")
	r.create(t, "@alice:x")
	var (
		mu        sync.Mutex
		positions = map[persistence.StreamPos]string{}
		wg        sync.WaitGroup
	)
	record := func(p persistence.StreamPos, what string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := positions[p]; dup {
			t.Errorf("position %d taken by %s and %s", p, prev, what)
		}
		positions[p] = what
	}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if w%2 == 0 {
					p, err := s.PutAccountData(ctx, "@u:x", persistence.AccountData{Type: "t" + string(rune('a'+w)), Content: json.RawMessage(`{}`)})
					if err != nil {
						t.Error(err)
						return
					}
					record(p, "account data")
				} else {
					p, err := s.PutReceipt(ctx, persistence.Receipt{RoomNID: r.nid, UserID: "@u:x", Type: "m.read", ThreadID: string(rune('a' + w)), EventID: "$e", TS: 1})
					if err != nil {
						t.Error(err)
						return
					}
					record(p, "receipt")
				}
				max, _ := s.MaxStreamPos(ctx)
				ad, err := s.AccountDataBetween(ctx, "@u:x", 0, max)
				if err != nil {
					t.Error(err)
					return
				}
				for _, d := range ad {
					if d.StreamPos > max {
						t.Errorf("read account data at %d past MaxStreamPos %d", d.StreamPos, max)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	max, err := s.MaxStreamPos(ctx)
	noErr(t, "MaxStreamPos", err)
	for p := range positions {
		if p > max {
			t.Fatalf("committed position %d beyond MaxStreamPos %d", p, max)
		}
	}
}

func testReadReceiptAndMemberCount(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	r := newRoom(s, "!count:x")
	r.create(t, "@alice:x")
	r.mustCommit(t, r.member("@bob:x", "join"), r.member("@carol:x", "join"))
	r.mustCommit(t, r.member("@carol:x", "leave"))
	if n, err := s.JoinedMemberCount(ctx, r.nid); err != nil || n != 2 {
		t.Fatalf("JoinedMemberCount = %d, %v; want 2", n, err)
	}
	_, err := s.LatestReadReceipt(ctx, r.nid, "@bob:x")
	wantErr(t, "LatestReadReceipt without receipts", err, persistence.ErrNotFound)
	put := func(typ, thread, ev string) {
		t.Helper()
		_, err := s.PutReceipt(ctx, persistence.Receipt{RoomNID: r.nid, UserID: "@bob:x", Type: typ, ThreadID: thread, EventID: ev, TS: 1})
		noErr(t, "PutReceipt", err)
	}
	put("m.read", "", "$one")
	put("m.read.private", "", "$two")
	put("m.read", "$thread-root", "$in-a-thread")
	if id, err := s.LatestReadReceipt(ctx, r.nid, "@bob:x"); err != nil || id != "$two" {
		t.Fatalf("LatestReadReceipt = %q, %v; want the newest unthreaded one, $two", id, err)
	}
}
