package storagetest

import (
	"slices"
	"sync"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func testRoomAliases(t *testing.T, s persistence.Store) {
	_, err := s.RoomAlias(bg, "#none:test")
	wantErr(t, "RoomAlias(unknown)", err, persistence.ErrNotFound)
	wantErr(t, "DeleteRoomAlias(unknown)", s.DeleteRoomAlias(bg, "#none:test"), persistence.ErrNotFound)

	a := persistence.RoomAlias{Alias: "#tea:test", RoomID: "!a:test", Creator: "@alice:test", CreatedTS: 10}
	noErr(t, "InsertRoomAlias", s.InsertRoomAlias(bg, a))
	got, err := s.RoomAlias(bg, "#tea:test")
	if err != nil || *got != a {
		t.Fatalf("RoomAlias = %+v, %v; want %+v", got, err, a)
	}
	// Taken, whatever the room: the first mapping stays.
	wantErr(t, "InsertRoomAlias(taken)", s.InsertRoomAlias(bg, persistence.RoomAlias{Alias: "#tea:test", RoomID: "!b:test", Creator: "@bob:test", CreatedTS: 11}), persistence.ErrAliasExists)
	if got, err := s.RoomAlias(bg, "#tea:test"); err != nil || got.RoomID != "!a:test" || got.Creator != "@alice:test" {
		t.Fatalf("after a refused insert RoomAlias = %+v, %v", got, err)
	}
	// Aliases are case-sensitive keys.
	noErr(t, "InsertRoomAlias(other case)", s.InsertRoomAlias(bg, persistence.RoomAlias{Alias: "#Tea:test", RoomID: "!b:test", Creator: "@bob:test", CreatedTS: 12}))
	noErr(t, "InsertRoomAlias(second)", s.InsertRoomAlias(bg, persistence.RoomAlias{Alias: "#coffee:test", RoomID: "!a:test", Creator: "@bob:test", CreatedTS: 13}))
	noErr(t, "InsertRoomAlias(older)", s.InsertRoomAlias(bg, persistence.RoomAlias{Alias: "#z-old:test", RoomID: "!a:test", Creator: "@bob:test", CreatedTS: 5}))

	list, err := s.RoomAliases(bg, "!a:test")
	if want := []string{"#z-old:test", "#tea:test", "#coffee:test"}; err != nil || !slices.Equal(list, want) {
		t.Fatalf("RoomAliases = %v, %v; want %v (oldest first)", list, err, want)
	}
	if list, err := s.RoomAliases(bg, "!unknown:test"); err != nil || len(list) != 0 {
		t.Fatalf("RoomAliases(unknown room) = %v, %v; want none", list, err)
	}

	noErr(t, "DeleteRoomAlias", s.DeleteRoomAlias(bg, "#tea:test"))
	_, err = s.RoomAlias(bg, "#tea:test")
	wantErr(t, "RoomAlias(deleted)", err, persistence.ErrNotFound)
	wantErr(t, "DeleteRoomAlias(twice)", s.DeleteRoomAlias(bg, "#tea:test"), persistence.ErrNotFound)
	if list, _ := s.RoomAliases(bg, "!a:test"); !slices.Equal(list, []string{"#z-old:test", "#coffee:test"}) {
		t.Fatalf("RoomAliases after delete = %v", list)
	}
	// A deleted alias can be taken again, by another room.
	noErr(t, "InsertRoomAlias(reuse)", s.InsertRoomAlias(bg, persistence.RoomAlias{Alias: "#tea:test", RoomID: "!b:test", Creator: "@bob:test", CreatedTS: 20}))
	if got, err := s.RoomAlias(bg, "#tea:test"); err != nil || got.RoomID != "!b:test" {
		t.Fatalf("reused alias = %+v, %v", got, err)
	}
}

func testRoomAliasRace(t *testing.T, s persistence.Store) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.InsertRoomAlias(bg, persistence.RoomAlias{Alias: "#race:test", RoomID: "!r:test", Creator: "@u:test", CreatedTS: int64(i)})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case err != persistence.ErrAliasExists:
			t.Fatalf("concurrent InsertRoomAlias: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent inserts of one alias succeeded, want 1", won)
	}
}

func testPublicRooms(t *testing.T, s persistence.Store) {
	if v, err := s.RoomVisibility(bg, "!never:test"); err != nil || v != persistence.VisibilityPrivate {
		t.Fatalf("RoomVisibility(never set) = %q, %v; want private", v, err)
	}
	if err := s.SetRoomVisibility(bg, "!x:test", "secret"); err == nil {
		t.Fatal("SetRoomVisibility accepted an unknown visibility")
	}

	small := newRoom(s, "!small:test")
	small.create(t, "@alice:test")
	big := newRoom(s, "!big:test")
	big.create(t, "@alice:test")
	big.mustCommit(t, big.member("@bob:test", "join"), big.member("@carol:test", "join"), big.member("@dave:test", "invite"))
	// Left and banned members do not count.
	big.mustCommit(t, big.member("@erin:test", "join"), big.member("@erin:test", "leave"))
	tie := newRoom(s, "!a-tie:test")
	tie.create(t, "@bob:test")
	hidden := newRoom(s, "!hidden:test")
	hidden.create(t, "@alice:test")
	hidden.mustCommit(t, hidden.member("@bob:test", "join"), hidden.member("@carol:test", "join"), hidden.member("@dave:test", "join"))

	for _, id := range []string{"!small:test", "!big:test", "!a-tie:test", "!hidden:test", "!not-stored:test"} {
		noErr(t, "SetRoomVisibility", s.SetRoomVisibility(bg, id, persistence.VisibilityPublic))
	}
	noErr(t, "SetRoomVisibility(private)", s.SetRoomVisibility(bg, "!hidden:test", persistence.VisibilityPrivate))
	if v, err := s.RoomVisibility(bg, "!hidden:test"); err != nil || v != persistence.VisibilityPrivate {
		t.Fatalf("RoomVisibility(unpublished) = %q, %v", v, err)
	}
	if v, err := s.RoomVisibility(bg, "!big:test"); err != nil || v != persistence.VisibilityPublic {
		t.Fatalf("RoomVisibility(published) = %q, %v", v, err)
	}

	got, err := s.PublicRooms(bg)
	noErr(t, "PublicRooms", err)
	want := []persistence.PublicRoom{
		{RoomID: "!big:test", RoomNID: big.nid, JoinedMembers: 3},
		{RoomID: "!a-tie:test", RoomNID: tie.nid, JoinedMembers: 1},
		{RoomID: "!small:test", RoomNID: small.nid, JoinedMembers: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("PublicRooms = %+v, want %+v (by joined members, then room ID; unpublished and unstored rooms left out)", got, want)
	}
}

func testReplaceRoomInDirectory(t *testing.T, s persistence.Store) {
	for _, a := range []persistence.RoomAlias{
		{Alias: "#old:test", RoomID: "!old:test", Creator: "@alice:test", CreatedTS: 1},
		{Alias: "#older:test", RoomID: "!old:test", Creator: "@bob:test", CreatedTS: 0},
		{Alias: "#new-own:test", RoomID: "!new:test", Creator: "@alice:test", CreatedTS: 2},
		{Alias: "#other:test", RoomID: "!other:test", Creator: "@alice:test", CreatedTS: 3},
	} {
		noErr(t, "InsertRoomAlias "+a.Alias, s.InsertRoomAlias(bg, a))
	}
	noErr(t, "SetRoomVisibility", s.SetRoomVisibility(bg, "!old:test", persistence.VisibilityPublic))

	moved, err := s.ReplaceRoomInDirectory(bg, "!old:test", "!new:test")
	noErr(t, "ReplaceRoomInDirectory", err)
	if want := []string{"#older:test", "#old:test"}; !slices.Equal(moved, want) {
		t.Fatalf("moved %v, want %v", moved, want)
	}
	for alias, room := range map[string]string{"#old:test": "!new:test", "#older:test": "!new:test", "#new-own:test": "!new:test", "#other:test": "!other:test"} {
		if a, err := s.RoomAlias(bg, alias); err != nil || a.RoomID != room {
			t.Fatalf("%s after the move = %+v, %v; want %s", alias, a, err, room)
		}
	}
	// Creator and creation time stay the alias's own.
	if a, _ := s.RoomAlias(bg, "#older:test"); a.Creator != "@bob:test" || a.CreatedTS != 0 {
		t.Fatalf("moved alias %+v lost its creator or time", a)
	}
	if list, err := s.RoomAliases(bg, "!old:test"); err != nil || len(list) != 0 {
		t.Fatalf("old room keeps aliases %v, %v", list, err)
	}
	for room, want := range map[string]string{"!old:test": persistence.VisibilityPrivate, "!new:test": persistence.VisibilityPublic} {
		if v, err := s.RoomVisibility(bg, room); err != nil || v != want {
			t.Fatalf("RoomVisibility(%s) = %q, %v; want %s", room, v, err, want)
		}
	}

	// An unpublished room with no aliases leaves its successor as it was.
	noErr(t, "SetRoomVisibility", s.SetRoomVisibility(bg, "!published:test", persistence.VisibilityPublic))
	moved, err = s.ReplaceRoomInDirectory(bg, "!private:test", "!published:test")
	noErr(t, "ReplaceRoomInDirectory(nothing to move)", err)
	if len(moved) != 0 {
		t.Fatalf("moved %v from a room without aliases", moved)
	}
	if v, _ := s.RoomVisibility(bg, "!published:test"); v != persistence.VisibilityPublic {
		t.Fatalf("a private predecessor changed its successor's visibility to %q", v)
	}
	if v, _ := s.RoomVisibility(bg, "!private:test"); v != persistence.VisibilityPrivate {
		t.Fatalf("private predecessor is %q", v)
	}
}

func testSearchLocalUsers(t *testing.T, s persistence.Store) {
	for _, lp := range []string{"alice", "bob", "carol", "dave", "percent", "zed"} {
		noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: lp, CreatedTS: 1}))
	}
	noErr(t, "SetDisplayName", s.SetDisplayName(bg, "bob", "Bobby Tables"))
	noErr(t, "SetAvatarURL", s.SetAvatarURL(bg, "bob", "mxc://test/bob"))
	noErr(t, "SetDisplayName", s.SetDisplayName(bg, "carol", "Alice's friend"))
	noErr(t, "SetDisplayName", s.SetDisplayName(bg, "percent", "100% sure"))
	noErr(t, "SetDisplayName", s.SetDisplayName(bg, "zed", "ALICE too"))
	noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: "alicia", CreatedTS: 1}))
	noErr(t, "DeactivateAccount", s.DeactivateAccount(bg, "alicia"))

	search := func(term, after string, limit int) []string {
		t.Helper()
		us, err := s.SearchLocalUsers(bg, "test", term, after, limit)
		noErr(t, "SearchLocalUsers", err)
		var out []string
		for _, u := range us {
			out = append(out, u.Localpart)
		}
		return out
	}
	for _, tc := range []struct {
		term string
		want []string
	}{
		{"alice", []string{"alice", "carol", "zed"}}, // user ID or display name, any case; deactivated left out
		{"ALI", []string{"alice", "carol", "zed"}},
		{"@bob:test", []string{"bob"}}, // the whole user ID
		{":test", []string{"alice", "bob", "carol", "dave", "percent", "zed"}},
		{"tables", []string{"bob"}},
		{"%", []string{"percent"}}, // LIKE wildcards are literal
		{"_", nil},
		{"nobody", nil},
	} {
		if got := search(tc.term, "", 10); !slices.Equal(got, tc.want) {
			t.Errorf("search %q = %v, want %v", tc.term, got, tc.want)
		}
	}
	if got := search("alice", "", 2); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Errorf("first page = %v", got)
	}
	if got := search("alice", "carol", 2); !slices.Equal(got, []string{"zed"}) {
		t.Errorf("second page = %v", got)
	}
	if got := search("alice", "", 0); len(got) != 0 {
		t.Errorf("limit 0 = %v", got)
	}
	us, err := s.SearchLocalUsers(bg, "test", "bobby", "", 10)
	if err != nil || len(us) != 1 || us[0] != (persistence.DirectoryUser{Localpart: "bob", DisplayName: "Bobby Tables", AvatarURL: "mxc://test/bob"}) {
		t.Fatalf("SearchLocalUsers(bobby) = %+v, %v", us, err)
	}
}
