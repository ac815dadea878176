package main

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// matrixErr is the body of a Matrix error.
type matrixErr struct {
	ErrCode string `json:"errcode"`
	Error   string `json:"error"`
}

// wantError checks a request fails with the status and errcode.
func (c *client) wantError(method, path string, body any, status int, errcode string) {
	c.t.Helper()
	var e matrixErr
	if code := c.do(method, path, body, &e); code != status || e.ErrCode != errcode {
		c.t.Fatalf("%s %s: %d %+v, want %d %s", method, path, code, e, status, errcode)
	}
}

func (c *client) createRoom(body map[string]any) string {
	c.t.Helper()
	var res struct {
		RoomID string `json:"room_id"`
	}
	c.must("POST", "/_matrix/client/v3/createRoom", body, &res)
	return res.RoomID
}

func aliasPath(alias string) string {
	return "/_matrix/client/v3/directory/room/" + url.PathEscape(alias)
}

type publicRoomsPage struct {
	Chunk []struct {
		RoomID           string `json:"room_id"`
		NumJoinedMembers int    `json:"num_joined_members"`
		WorldReadable    bool   `json:"world_readable"`
		GuestCanJoin     bool   `json:"guest_can_join"`
		JoinRule         string `json:"join_rule"`
		Name             string `json:"name"`
		Topic            string `json:"topic"`
		CanonicalAlias   string `json:"canonical_alias"`
		RoomType         string `json:"room_type"`
	} `json:"chunk"`
	NextBatch string `json:"next_batch"`
	PrevBatch string `json:"prev_batch"`
	Total     int    `json:"total_room_count_estimate"`
}

func (p publicRoomsPage) ids() []string {
	var out []string
	for _, c := range p.Chunk {
		out = append(out, c.RoomID)
	}
	return out
}

// TestRoomAndUserDirectory: aliases (create, resolve, join by, list,
// delete with its permissions), the public room list (publishing,
// ordering, pagination, search) and the user directory (shared room,
// public room, stranger), with their errors.
func TestRoomAndUserDirectory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, append(env, "SOMA_REGISTRATION_SHARED_SECRET="+operatorSecret)...)
		alice, bob, carol := srv.register("alice"), srv.register("bob"), srv.register("carol")
		dave, erin := srv.register("dave"), srv.register("erin")
		if code, reply := srv.sharedSecretRegister("root", "correct horse root", true); code != http.StatusOK {
			t.Fatalf("admin registration: %d %v", code, reply)
		}
		root := srv.login("root")
		anon := srv.anonymous()

		// /createRoom with an alias and visibility public.
		tea := alice.createRoom(map[string]any{"name": "Tea Room", "topic": "Green and black", "preset": "public_chat",
			"room_alias_name": "tea", "visibility": "public"})
		var resolved struct {
			RoomID  string   `json:"room_id"`
			Servers []string `json:"servers"`
		}
		anon.must("GET", aliasPath("#tea:test.local"), nil, &resolved)
		if resolved.RoomID != tea || !slices.Equal(resolved.Servers, []string{"test.local"}) {
			t.Fatalf("resolved #tea to %+v, want %s on test.local", resolved, tea)
		}
		var canonical map[string]any
		alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/state/m.room.canonical_alias/", nil, &canonical)
		if canonical["alias"] != "#tea:test.local" {
			t.Fatalf("canonical alias %v", canonical)
		}
		alice.wantError("POST", "/_matrix/client/v3/createRoom", map[string]any{"room_alias_name": "tea"}, http.StatusBadRequest, "M_ROOM_IN_USE")
		alice.wantError("POST", "/_matrix/client/v3/createRoom", map[string]any{"room_alias_name": "a:b"}, http.StatusBadRequest, "M_INVALID_PARAM")

		// Joining by alias, local and remote.
		var joined struct {
			RoomID string `json:"room_id"`
		}
		bob.must("POST", "/_matrix/client/v3/join/"+url.PathEscape("#tea:test.local"), map[string]any{}, &joined)
		if joined.RoomID != tea {
			t.Fatalf("join by alias answered %q, want %s", joined.RoomID, tea)
		}
		carol.must("POST", "/_matrix/client/v3/join/"+url.PathEscape("#tea:test.local"), map[string]any{}, nil)
		dave.wantError("POST", "/_matrix/client/v3/join/"+url.PathEscape("#nope:test.local"), map[string]any{}, http.StatusNotFound, "M_NOT_FOUND")
		dave.wantError("POST", "/_matrix/client/v3/join/"+url.PathEscape("#tea:elsewhere.example"), map[string]any{}, http.StatusNotFound, "M_NOT_FOUND")

		// PUT /directory/room: members only, local aliases only, once.
		bob.must("PUT", aliasPath("#tea-two:test.local"), map[string]any{"room_id": tea}, nil)
		carol.wantError("PUT", aliasPath("#tea-two:test.local"), map[string]any{"room_id": tea}, http.StatusConflict, "M_UNKNOWN")
		dave.wantError("PUT", aliasPath("#daves:test.local"), map[string]any{"room_id": tea}, http.StatusForbidden, "M_FORBIDDEN")
		bob.wantError("PUT", aliasPath("#far:elsewhere.example"), map[string]any{"room_id": tea}, http.StatusBadRequest, "M_INVALID_PARAM")
		bob.wantError("PUT", aliasPath("no-hash"), map[string]any{"room_id": tea}, http.StatusBadRequest, "M_INVALID_PARAM")
		bob.wantError("PUT", aliasPath("#x:test.local"), map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM")
		anon.wantError("GET", aliasPath("#unknown:test.local"), nil, http.StatusNotFound, "M_NOT_FOUND")
		anon.wantError("GET", aliasPath("#tea:elsewhere.example"), nil, http.StatusNotFound, "M_NOT_FOUND")

		// GET /rooms/{roomId}/aliases: members only (history is shared).
		var aliases struct {
			Aliases []string `json:"aliases"`
		}
		bob.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/aliases", nil, &aliases)
		if !slices.Equal(aliases.Aliases, []string{"#tea:test.local", "#tea-two:test.local"}) {
			t.Fatalf("aliases %v", aliases.Aliases)
		}
		dave.wantError("GET", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/aliases", nil, http.StatusForbidden, "M_FORBIDDEN")

		// The canonical alias must point to the room.
		bob.must("PUT", aliasPath("#bobs:test.local"), map[string]any{"room_id": tea}, nil)
		other := carol.createRoom(map[string]any{"room_alias_name": "carols-own"})
		if anon.must("GET", aliasPath("#carols-own:test.local"), nil, &resolved); resolved.RoomID != other {
			t.Fatalf("#carols-own resolved to %s, want %s", resolved.RoomID, other)
		}
		alice.wantError("PUT", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/state/m.room.canonical_alias/",
			map[string]any{"alias": "#tea:test.local", "alt_aliases": []string{"#carols-own:test.local"}}, http.StatusBadRequest, "M_BAD_ALIAS")
		alice.must("PUT", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/state/m.room.canonical_alias/",
			map[string]any{"alias": "#tea:test.local", "alt_aliases": []string{"#tea-two:test.local"}}, nil)

		// DELETE: the creator, a member with power over the canonical
		// alias, or an admin; nobody else.
		carol.must("PUT", aliasPath("#carols:test.local"), map[string]any{"room_id": tea}, nil)
		bob.wantError("DELETE", aliasPath("#carols:test.local"), nil, http.StatusForbidden, "M_FORBIDDEN")
		carol.must("DELETE", aliasPath("#carols:test.local"), nil, nil)
		anon.wantError("GET", aliasPath("#carols:test.local"), nil, http.StatusNotFound, "M_NOT_FOUND")
		carol.wantError("DELETE", aliasPath("#carols:test.local"), nil, http.StatusNotFound, "M_NOT_FOUND")
		alice.must("DELETE", aliasPath("#tea-two:test.local"), nil, nil) // power 100, not the creator
		root.must("DELETE", aliasPath("#bobs:test.local"), nil, nil)     // admin, not a member
		carol.wantError("DELETE", aliasPath("#far:elsewhere.example"), nil, http.StatusBadRequest, "M_INVALID_PARAM")
		canonical = map[string]any{}
		alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/state/m.room.canonical_alias/", nil, &canonical)
		if canonical["alias"] != "#tea:test.local" || len(canonical["alt_aliases"].([]any)) != 0 {
			t.Fatalf("canonical alias after deleting an alt alias: %v", canonical)
		}
		bob.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/aliases", nil, &aliases)
		if !slices.Equal(aliases.Aliases, []string{"#tea:test.local"}) {
			t.Fatalf("aliases after deletes %v", aliases.Aliases)
		}

		// More rooms: Coffee (2 members, published afterwards), a space
		// (1 member), a private room (alice and erin).
		coffee := alice.createRoom(map[string]any{"name": "Coffee", "preset": "public_chat"})
		bob.must("POST", "/_matrix/client/v3/rooms/"+pathEscape(coffee)+"/join", map[string]any{}, nil)
		space := alice.createRoom(map[string]any{"name": "Cocoa Space", "preset": "public_chat", "visibility": "public",
			"creation_content": map[string]any{"type": "m.space"}})
		secret := alice.createRoom(map[string]any{"name": "Secret tea", "invite": []string{erin.userID}})
		erin.must("POST", "/_matrix/client/v3/join/"+pathEscape(secret), map[string]any{}, nil)

		var vis struct {
			Visibility string `json:"visibility"`
		}
		anon.must("GET", "/_matrix/client/v3/directory/list/room/"+pathEscape(coffee), nil, &vis)
		if vis.Visibility != "private" {
			t.Fatalf("coffee visibility %q", vis.Visibility)
		}
		anon.wantError("GET", "/_matrix/client/v3/directory/list/room/"+pathEscape("!nope:test.local"), nil, http.StatusNotFound, "M_NOT_FOUND")
		bob.wantError("PUT", "/_matrix/client/v3/directory/list/room/"+pathEscape(coffee), map[string]any{"visibility": "public"}, http.StatusForbidden, "M_FORBIDDEN")
		alice.wantError("PUT", "/_matrix/client/v3/directory/list/room/"+pathEscape(coffee), map[string]any{"visibility": "loud"}, http.StatusBadRequest, "M_INVALID_PARAM")
		alice.wantError("PUT", "/_matrix/client/v3/directory/list/room/"+pathEscape("!nope:test.local"), map[string]any{"visibility": "public"}, http.StatusNotFound, "M_NOT_FOUND")
		alice.must("PUT", "/_matrix/client/v3/directory/list/room/"+pathEscape(coffee), map[string]any{"visibility": "public"}, nil)
		anon.must("GET", "/_matrix/client/v3/directory/list/room/"+pathEscape(coffee), nil, &vis)
		if vis.Visibility != "public" {
			t.Fatalf("coffee visibility after PUT %q", vis.Visibility)
		}

		// GET /publicRooms, without a token, by joined members.
		var page publicRoomsPage
		anon.must("GET", "/_matrix/client/v3/publicRooms", nil, &page)
		if !slices.Equal(page.ids(), []string{tea, coffee, space}) || page.Total != 3 || page.NextBatch != "" || page.PrevBatch != "" {
			t.Fatalf("public rooms %v (total %d, next %q, prev %q), want tea, coffee, space", page.ids(), page.Total, page.NextBatch, page.PrevBatch)
		}
		if c := page.Chunk[0]; c.Name != "Tea Room" || c.Topic != "Green and black" || c.CanonicalAlias != "#tea:test.local" ||
			c.NumJoinedMembers != 3 || c.JoinRule != "public" || c.WorldReadable || c.GuestCanJoin || c.RoomType != "" {
			t.Fatalf("tea's entry %+v", c)
		}
		if c := page.Chunk[2]; c.RoomType != "m.space" || c.NumJoinedMembers != 1 {
			t.Fatalf("space's entry %+v", c)
		}
		// Pages of one, forwards and back.
		var p1, p2, p3, back publicRoomsPage
		anon.must("GET", "/_matrix/client/v3/publicRooms?limit=1", nil, &p1)
		anon.must("GET", "/_matrix/client/v3/publicRooms?limit=1&since="+url.QueryEscape(p1.NextBatch), nil, &p2)
		alice.must("POST", "/_matrix/client/v3/publicRooms", map[string]any{"limit": 1, "since": p2.NextBatch}, &p3)
		anon.must("GET", "/_matrix/client/v3/publicRooms?limit=1&since="+url.QueryEscape(p3.PrevBatch), nil, &back)
		if !slices.Equal(p1.ids(), []string{tea}) || p1.PrevBatch != "" || p1.NextBatch == "" ||
			!slices.Equal(p2.ids(), []string{coffee}) || p2.PrevBatch == "" || p2.NextBatch == "" ||
			!slices.Equal(p3.ids(), []string{space}) || p3.NextBatch != "" || p3.PrevBatch == "" ||
			!slices.Equal(back.ids(), []string{coffee}) {
			t.Fatalf("pages %v %v %v, back %v", p1.ids(), p2.ids(), p3.ids(), back.ids())
		}
		anon.wantError("GET", "/_matrix/client/v3/publicRooms?since=garbage", nil, http.StatusBadRequest, "M_INVALID_PARAM")
		anon.wantError("GET", "/_matrix/client/v3/publicRooms?server=elsewhere.example", nil, http.StatusNotFound, "M_NOT_FOUND")
		anon.wantError("POST", "/_matrix/client/v3/publicRooms", map[string]any{}, http.StatusUnauthorized, "M_MISSING_TOKEN")

		// POST /publicRooms filters: name, topic, alias; room types.
		for _, tc := range []struct {
			filter map[string]any
			want   []string
		}{
			{map[string]any{"generic_search_term": "TEA"}, []string{tea}}, // the private "Secret tea" is not listed
			{map[string]any{"generic_search_term": "green"}, []string{tea}},
			{map[string]any{"generic_search_term": "#tea:"}, []string{tea}},
			{map[string]any{"generic_search_term": "co"}, []string{coffee, space}},
			{map[string]any{"room_types": []any{"m.space"}}, []string{space}},
			{map[string]any{"room_types": []any{nil}}, []string{tea, coffee}},
			{map[string]any{"generic_search_term": "nothing like it"}, nil},
		} {
			var fp publicRoomsPage
			bob.must("POST", "/_matrix/client/v3/publicRooms", map[string]any{"filter": tc.filter}, &fp)
			if !slices.Equal(fp.ids(), tc.want) {
				t.Errorf("filter %v: %v, want %v", tc.filter, fp.ids(), tc.want)
			}
		}
		var fp1, fp2 publicRoomsPage
		bob.must("POST", "/_matrix/client/v3/publicRooms", map[string]any{"filter": map[string]any{"generic_search_term": "co"}, "limit": 1}, &fp1)
		bob.must("POST", "/_matrix/client/v3/publicRooms", map[string]any{"filter": map[string]any{"generic_search_term": "co"}, "limit": 1, "since": fp1.NextBatch}, &fp2)
		if !slices.Equal(fp1.ids(), []string{coffee}) || fp1.Total != 2 || !slices.Equal(fp2.ids(), []string{space}) || fp2.NextBatch != "" {
			t.Fatalf("filtered pages %v then %v (next %q)", fp1.ids(), fp2.ids(), fp2.NextBatch)
		}

		// An admin unpublishes a room they are not in.
		root.must("PUT", "/_matrix/client/v3/directory/list/room/"+pathEscape(coffee), map[string]any{"visibility": "private"}, nil)
		var unpublished publicRoomsPage
		anon.must("GET", "/_matrix/client/v3/publicRooms", nil, &unpublished)
		if !slices.Equal(unpublished.ids(), []string{tea, space}) {
			t.Fatalf("after unpublishing coffee: %v", unpublished.ids())
		}

		// User directory: bob is in public rooms, erin shares only a
		// private room with alice, dave is in no room at all.
		bob.must("PUT", "/_matrix/client/v3/profile/"+bob.userID+"/displayname", map[string]any{"displayname": "Bobby Tables"}, nil)
		type results struct {
			Results []struct {
				UserID      string `json:"user_id"`
				DisplayName string `json:"display_name"`
			} `json:"results"`
			Limited bool `json:"limited"`
		}
		search := func(c *client, term string, limit int) results {
			t.Helper()
			body := map[string]any{"search_term": term}
			if limit > 0 {
				body["limit"] = limit
			}
			var res results
			c.must("POST", "/_matrix/client/v3/user_directory/search", body, &res)
			return res
		}
		ids := func(r results) []string {
			var out []string
			for _, u := range r.Results {
				out = append(out, u.UserID)
			}
			return out
		}
		if got := search(dave, "TABLES", 0); !slices.Equal(ids(got), []string{bob.userID}) || got.Results[0].DisplayName != "Bobby Tables" || got.Limited {
			t.Fatalf("dave finds bob (a public room) by display name: %+v", got)
		}
		if got := ids(search(dave, "erin", 0)); len(got) != 0 {
			t.Fatalf("dave found erin, who is only in a private room: %v", got)
		}
		if got := ids(search(alice, "ERIN", 0)); !slices.Equal(got, []string{erin.userID}) {
			t.Fatalf("alice, who shares a room with erin, found %v", got)
		}
		if got := ids(search(alice, "dave", 0)); len(got) != 0 {
			t.Fatalf("dave is in no room, yet found: %v", got)
		}
		if got := ids(search(erin, ":test.local", 0)); !slices.Equal(got, []string{alice.userID, bob.userID, carol.userID}) {
			t.Fatalf("erin's search of the server: %v", got)
		}
		if got := search(erin, ":test.local", 2); !slices.Equal(ids(got), []string{alice.userID, bob.userID}) || !got.Limited {
			t.Fatalf("limited search: %+v", got)
		}
		dave.wantError("POST", "/_matrix/client/v3/user_directory/search", map[string]any{"limit": 3}, http.StatusBadRequest, "M_MISSING_PARAM")
		anon.wantError("POST", "/_matrix/client/v3/user_directory/search", map[string]any{"search_term": "bob"}, http.StatusUnauthorized, "M_MISSING_TOKEN")

		// Deleting the canonical alias takes it out of the room's state.
		alice.must("DELETE", aliasPath("#tea:test.local"), nil, nil)
		after := map[string]any{}
		alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(tea)+"/state/m.room.canonical_alias/", nil, &after)
		if _, ok := after["alias"]; ok {
			t.Fatalf("canonical alias after deleting it: %v", after)
		}
	})
}
