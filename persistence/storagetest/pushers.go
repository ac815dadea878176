package storagetest

import (
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// Conformance tests of pushers: set, replace, delete, the unique (app_id,
// pushkey) rule across users, the room's members' pushers, and pushers
// going with the device that set them.

func pusherKeys(t *testing.T, ps []persistence.Pusher) []string {
	t.Helper()
	out := []string{}
	for _, p := range ps {
		out = append(out, p.UserID+"/"+p.AppID+"/"+p.Pushkey+"/"+p.DeviceID)
	}
	return out
}

func userPushers(t *testing.T, s persistence.Store, userID string) []string {
	t.Helper()
	ps, err := s.PushersOfUser(bg, userID)
	noErr(t, "PushersOfUser", err)
	return pusherKeys(t, ps)
}

func testPushers(t *testing.T, s persistence.Store) {
	for _, lp := range []string{"alice", "bob"} {
		noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: lp, CreatedTS: 1}))
		for _, d := range []string{"D1", "D2"} {
			noErr(t, "UpsertDevice", s.UpsertDevice(bg, persistence.Device{Localpart: lp, DeviceID: d}, "hash-"+lp+d))
		}
	}
	pusher := func(lp, dev, app, key string) persistence.Pusher {
		return persistence.Pusher{
			UserID: "@" + lp + ":x", Localpart: lp, DeviceID: dev, Kind: "http", AppID: app, Pushkey: key,
			AppDisplayName: "App", DeviceDisplayName: "Phone", Lang: "en", ProfileTag: "tag",
			Data: []byte(`{"url":"https://gw/_matrix/push/v1/notify"}`), PushkeyTS: 1000,
		}
	}
	noErr(t, "SetPusher", s.SetPusher(bg, pusher("alice", "D1", "app", "k1"), false))
	noErr(t, "SetPusher", s.SetPusher(bg, pusher("alice", "D2", "app", "k2"), false))
	// Replacing keeps one row and takes the new values.
	p := pusher("alice", "D2", "app", "k1")
	p.Lang, p.Data, p.PushkeyTS = "fr", []byte(`{"url":"https://other/_matrix/push/v1/notify","format":"event_id_only"}`), 2000
	noErr(t, "SetPusher(replace)", s.SetPusher(bg, p, false))
	ps, err := s.PushersOfUser(bg, "@alice:x")
	noErr(t, "PushersOfUser", err)
	if got := pusherKeys(t, ps); !slices.Equal(got, []string{"@alice:x/app/k1/D2", "@alice:x/app/k2/D2"}) {
		t.Fatalf("alice's pushers = %v", got)
	}
	if ps[0].Lang != "fr" || ps[0].PushkeyTS != 2000 || string(ps[0].Data) != string(p.Data) || ps[0].ProfileTag != "tag" || ps[0].Kind != "http" {
		t.Fatalf("replaced pusher = %+v", ps[0])
	}

	// Another user's pusher with the same app ID and pushkey: appended, both
	// stay; not appended, it takes the pushkey over.
	noErr(t, "SetPusher(append)", s.SetPusher(bg, pusher("bob", "D1", "app", "k1"), true))
	if got := userPushers(t, s, "@alice:x"); len(got) != 2 {
		t.Fatalf("append removed alice's pushers: %v", got)
	}
	noErr(t, "SetPusher(take over)", s.SetPusher(bg, pusher("bob", "D1", "app", "k2"), false))
	if got := userPushers(t, s, "@alice:x"); !slices.Equal(got, []string{"@alice:x/app/k1/D2"}) {
		t.Fatalf("after bob took k2 over alice has %v", got)
	}

	// A device that does not exist cannot set one.
	err = s.SetPusher(bg, pusher("alice", "GONE", "app", "k9"), false)
	wantErr(t, "SetPusher for a deleted device", err, persistence.ErrNotFound)

	// Deleting: one, then the device's.
	noErr(t, "DeletePusher", s.DeletePusher(bg, "@bob:x", "app", "k2"))
	noErr(t, "DeletePusher(none)", s.DeletePusher(bg, "@bob:x", "app", "nope"))
	if got := userPushers(t, s, "@bob:x"); !slices.Equal(got, []string{"@bob:x/app/k1/D1"}) {
		t.Fatalf("bob's pushers = %v", got)
	}
	noErr(t, "SetPusher", s.SetPusher(bg, pusher("alice", "D1", "app", "k3"), false))
	noErr(t, "DeleteDevice", s.DeleteDevice(bg, "alice", "D2"))
	if got := userPushers(t, s, "@alice:x"); !slices.Equal(got, []string{"@alice:x/app/k3/D1"}) {
		t.Fatalf("after deleting D2 alice has %v, want the D1 pusher only", got)
	}
	noErr(t, "DeleteDevicesExcept", s.DeleteDevicesExcept(bg, "alice", "D9"))
	if got := userPushers(t, s, "@alice:x"); len(got) != 0 {
		t.Fatalf("after deleting every device alice has %v", got)
	}
	noErr(t, "DeactivateAccount", s.DeactivateAccount(bg, "bob"))
	if got := userPushers(t, s, "@bob:x"); len(got) != 0 {
		t.Fatalf("after deactivation bob has %v", got)
	}
}

func testPushersOfJoinedMembers(t *testing.T, s persistence.Store) {
	for _, lp := range []string{"alice", "bob", "carol"} {
		noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: lp, CreatedTS: 1}))
		noErr(t, "UpsertDevice", s.UpsertDevice(bg, persistence.Device{Localpart: lp, DeviceID: "D"}, "hash-"+lp))
		noErr(t, "SetPusher", s.SetPusher(bg, persistence.Pusher{
			UserID: "@" + lp + ":x", Localpart: lp, DeviceID: "D", Kind: "http", AppID: "app", Pushkey: lp,
			Data: []byte(`{}`),
		}, false))
	}
	r := newRoom(s, "!push:x")
	r.create(t, "@alice:x")
	r.mustCommit(t, r.member("@bob:x", "join"), r.member("@carol:x", "invite"))
	ps, err := s.PushersOfJoinedMembers(bg, r.nid)
	noErr(t, "PushersOfJoinedMembers", err)
	if got := pusherKeys(t, ps); !slices.Equal(got, []string{"@alice:x/app/alice/D", "@bob:x/app/bob/D"}) {
		t.Fatalf("pushers of joined members = %v, want alice's and bob's (carol is only invited)", got)
	}
}

func testEventsInRooms(t *testing.T, s persistence.Store) {
	a, b, c := newRoom(s, "!a:x"), newRoom(s, "!b:x"), newRoom(s, "!c:x")
	for _, r := range []*room{a, b, c} {
		r.create(t, "@alice:x")
	}
	a1 := a.mustCommit(t, a.message("@alice:x", "a1")).LastStream
	b.mustCommit(t, b.message("@alice:x", "b1"))
	c.mustCommit(t, c.message("@alice:x", "c1"))
	a.mustCommit(t, a.message("@alice:x", "a2"))
	top, err := s.MaxStreamPos(bg)
	noErr(t, "MaxStreamPos", err)
	evs, err := s.EventsInRooms(bg, []persistence.RoomNID{a.nid, b.nid}, a1-1, top, 10)
	noErr(t, "EventsInRooms", err)
	want := []string{a.events[len(a.events)-1], b.events[len(b.events)-1], a.events[len(a.events)-2]}
	if got := eventIDs(evs); !slices.Equal(got, want) {
		t.Fatalf("EventsInRooms = %v, want %v (newest first, room c left out)", got, want)
	}
	evs, err = s.EventsInRooms(bg, []persistence.RoomNID{a.nid, b.nid}, a1-1, top, 2)
	noErr(t, "EventsInRooms(limit 2)", err)
	if got := eventIDs(evs); !slices.Equal(got, want[:2]) {
		t.Fatalf("EventsInRooms limit 2 = %v, want %v", got, want[:2])
	}
	if evs, err := s.EventsInRooms(bg, nil, 0, top, 10); err != nil || len(evs) != 0 {
		t.Fatalf("EventsInRooms of no rooms = %v, %v", evs, err)
	}
}
