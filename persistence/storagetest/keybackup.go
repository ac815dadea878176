package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func testKeyBackupVersions(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice, bob = "@alice:x", "@bob:x"
	_, err := s.KeyBackupVersion(ctx, alice, "")
	wantErr(t, "current version of a user without backups", err, persistence.ErrNotFound)
	v1, err := s.CreateKeyBackupVersion(ctx, alice, "m.megolm_backup.v1.curve25519-aes-sha2", json.RawMessage(`{"public_key":"p1"}`))
	noErr(t, "CreateKeyBackupVersion", err)
	v2, err := s.CreateKeyBackupVersion(ctx, alice, "m.megolm_backup.v1.curve25519-aes-sha2", json.RawMessage(`{"public_key":"p2"}`))
	noErr(t, "CreateKeyBackupVersion", err)
	if v1 == v2 || v1 == "" {
		t.Fatalf("versions %q and %q", v1, v2)
	}
	bobs, err := s.CreateKeyBackupVersion(ctx, bob, "alg", json.RawMessage(`{}`))
	noErr(t, "CreateKeyBackupVersion", err)
	cur, err := s.KeyBackupVersion(ctx, alice, "")
	noErr(t, "KeyBackupVersion", err)
	if cur.Version != v2 || cur.Algorithm != "m.megolm_backup.v1.curve25519-aes-sha2" || string(cur.AuthData) != `{"public_key":"p2"}` || cur.Count != 0 || cur.Etag == "" {
		t.Fatalf("current version = %+v, want %s", cur, v2)
	}
	if old, err := s.KeyBackupVersion(ctx, alice, v1); err != nil || old.Version != v1 || string(old.AuthData) != `{"public_key":"p1"}` {
		t.Fatalf("version %s = %+v, %v", v1, old, err)
	}
	for _, v := range []string{"99", "abc", "01", "-1"} {
		_, err := s.KeyBackupVersion(ctx, alice, v)
		wantErr(t, "unknown version "+v, err, persistence.ErrNotFound)
	}
	// Versions are per user.
	if b, err := s.KeyBackupVersion(ctx, bob, ""); err != nil || b.Version != bobs || b.Algorithm != "alg" {
		t.Fatalf("bob's current version = %+v, %v", b, err)
	}

	noErr(t, "UpdateKeyBackupAuthData", s.UpdateKeyBackupAuthData(ctx, alice, v2, json.RawMessage(`{"public_key":"p2","x":1}`)))
	if cur, _ := s.KeyBackupVersion(ctx, alice, v2); string(cur.AuthData) != `{"public_key":"p2","x":1}` {
		t.Fatalf("auth_data after update = %s", cur.AuthData)
	}
	wantErr(t, "updating an unknown version", s.UpdateKeyBackupAuthData(ctx, alice, "99", json.RawMessage(`{}`)), persistence.ErrNotFound)

	// Deleting the current version makes the previous one current; its
	// number is not handed out again; deleting twice is fine.
	noErr(t, "DeleteKeyBackupVersion", s.DeleteKeyBackupVersion(ctx, alice, v2))
	noErr(t, "DeleteKeyBackupVersion again", s.DeleteKeyBackupVersion(ctx, alice, v2))
	wantErr(t, "deleting an unknown version", s.DeleteKeyBackupVersion(ctx, alice, "99"), persistence.ErrNotFound)
	_, err = s.KeyBackupVersion(ctx, alice, v2)
	wantErr(t, "reading a deleted version", err, persistence.ErrNotFound)
	wantErr(t, "updating a deleted version", s.UpdateKeyBackupAuthData(ctx, alice, v2, json.RawMessage(`{}`)), persistence.ErrNotFound)
	if cur, err := s.KeyBackupVersion(ctx, alice, ""); err != nil || cur.Version != v1 {
		t.Fatalf("current after deleting %s = %+v, %v; want %s", v2, cur, err, v1)
	}
	v3, err := s.CreateKeyBackupVersion(ctx, alice, "alg", json.RawMessage(`{}`))
	noErr(t, "CreateKeyBackupVersion", err)
	if v3 == v1 || v3 == v2 {
		t.Fatalf("a version number was reused: %s", v3)
	}
}

func testKeyBackupSessions(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice = "@alice:x"
	_, _, err := s.PutKeyBackupSessions(ctx, alice, "1", nil)
	wantErr(t, "storing keys without a backup", err, persistence.ErrNotFound)
	old, err := s.CreateKeyBackupVersion(ctx, alice, "alg", json.RawMessage(`{}`))
	noErr(t, "CreateKeyBackupVersion", err)
	v, err := s.CreateKeyBackupVersion(ctx, alice, "alg", json.RawMessage(`{}`))
	noErr(t, "CreateKeyBackupVersion", err)
	_, _, err = s.PutKeyBackupSessions(ctx, alice, old, nil)
	wantErr(t, "storing keys in an older version", err, persistence.ErrWrongKeyBackupVersion)
	_, _, err = s.PutKeyBackupSessions(ctx, alice, "99", nil)
	wantErr(t, "storing keys in an unknown version", err, persistence.ErrWrongKeyBackupVersion)

	key := func(room, session string, verified bool, index, forwarded int64, data string) persistence.KeyBackupSession {
		return persistence.KeyBackupSession{RoomID: room, SessionID: session, IsVerified: verified,
			FirstMessageIndex: index, ForwardedCount: forwarded, SessionData: json.RawMessage(`{"d":"` + data + `"}`)}
	}
	etag0, count, err := s.PutKeyBackupSessions(ctx, alice, v, []persistence.KeyBackupSession{
		key("!a:x", "s1", false, 5, 1, "first"), key("!a:x", "s2", false, 0, 0, "a2"), key("!b:x", "s1", true, 0, 0, "b1"),
	})
	noErr(t, "PutKeyBackupSessions", err)
	if count != 3 || etag0 == "" {
		t.Fatalf("etag %q, count %d after three keys", etag0, count)
	}
	// Each upload of !a:x/s1 states whether it replaces the stored key.
	etag := etag0
	for i, tc := range []struct {
		k       persistence.KeyBackupSession
		replace bool
	}{
		{key("!a:x", "s1", false, 5, 1, "same"), false},
		{key("!a:x", "s1", false, 6, 0, "later index"), false},
		{key("!a:x", "s1", false, 5, 2, "more forwarded"), false},
		{key("!a:x", "s1", false, 5, 0, "less forwarded"), true},
		{key("!a:x", "s1", false, 3, 9, "lower index"), true},
		{key("!a:x", "s1", true, 9, 9, "verified"), true},
		{key("!a:x", "s1", false, 0, 0, "unverified"), false},
		{key("!a:x", "s1", true, 8, 9, "verified, lower index"), true},
	} {
		before, _ := s.KeyBackupSessions(ctx, alice, v, "!a:x", "s1")
		e, n, err := s.PutKeyBackupSessions(ctx, alice, v, []persistence.KeyBackupSession{tc.k})
		noErr(t, "PutKeyBackupSessions", err)
		after, _ := s.KeyBackupSessions(ctx, alice, v, "!a:x", "s1")
		if len(after) != 1 || n != 3 {
			t.Fatalf("case %d: %d keys for the session, count %d", i, len(after), n)
		}
		replaced := string(after[0].SessionData) != string(before[0].SessionData)
		if replaced != tc.replace || (replaced && fmt.Sprint(after[0]) != fmt.Sprint(tc.k)) {
			t.Fatalf("case %d (%s): replaced %v, want %v; stored %+v", i, tc.k.SessionData, replaced, tc.replace, after[0])
		}
		if (e != etag) != tc.replace {
			t.Fatalf("case %d: etag %q after %q, want a change only when the key was replaced", i, e, etag)
		}
		etag = e
	}

	all, err := s.KeyBackupSessions(ctx, alice, v, "", "")
	noErr(t, "KeyBackupSessions", err)
	if len(all) != 3 || all[0].RoomID != "!a:x" || all[0].SessionID != "s1" || all[2].RoomID != "!b:x" {
		t.Fatalf("all keys = %+v", all)
	}
	if room, _ := s.KeyBackupSessions(ctx, alice, v, "!a:x", ""); len(room) != 2 {
		t.Fatalf("!a:x's keys = %+v", room)
	}
	if none, err := s.KeyBackupSessions(ctx, alice, v, "!a:x", "s9"); err != nil || len(none) != 0 {
		t.Fatalf("an unknown session = %+v, %v", none, err)
	}
	if cur, _ := s.KeyBackupVersion(ctx, alice, v); cur.Count != 3 || cur.Etag != etag {
		t.Fatalf("version = %+v, want count 3 and etag %q", cur, etag)
	}
	if keys, err := s.KeyBackupSessions(ctx, alice, old, "", ""); err != nil || len(keys) != 0 {
		t.Fatalf("the older version's keys = %+v, %v", keys, err)
	}

	e, n, err := s.DeleteKeyBackupSessions(ctx, alice, v, "!a:x", "s2")
	noErr(t, "DeleteKeyBackupSessions", err)
	if n != 2 || e == etag {
		t.Fatalf("after deleting a session: etag %q (was %q), count %d", e, etag, n)
	}
	if e2, n, _ := s.DeleteKeyBackupSessions(ctx, alice, v, "!a:x", "s2"); n != 2 || e2 != e {
		t.Fatalf("deleting nothing changed the etag %q → %q or count %d", e, e2, n)
	}
	if _, n, _ := s.DeleteKeyBackupSessions(ctx, alice, v, "!b:x", ""); n != 1 {
		t.Fatalf("after deleting room !b:x: count %d", n)
	}
	if _, n, _ := s.DeleteKeyBackupSessions(ctx, alice, v, "", ""); n != 0 {
		t.Fatalf("after deleting all: count %d", n)
	}
	_, _, err = s.DeleteKeyBackupSessions(ctx, alice, "99", "", "")
	wantErr(t, "deleting keys of an unknown version", err, persistence.ErrNotFound)

	// Deleting the version deletes its keys.
	_, _, err = s.PutKeyBackupSessions(ctx, alice, v, []persistence.KeyBackupSession{key("!c:x", "s", false, 0, 0, "c")})
	noErr(t, "PutKeyBackupSessions", err)
	noErr(t, "DeleteKeyBackupVersion", s.DeleteKeyBackupVersion(ctx, alice, v))
	_, err = s.KeyBackupSessions(ctx, alice, v, "", "")
	wantErr(t, "reading keys of a deleted version", err, persistence.ErrNotFound)
	_, _, err = s.PutKeyBackupSessions(ctx, alice, v, nil)
	wantErr(t, "storing keys in a deleted version", err, persistence.ErrWrongKeyBackupVersion)
	if _, _, err := s.PutKeyBackupSessions(ctx, alice, "x", []persistence.KeyBackupSession{{SessionData: json.RawMessage("{")}}); err == nil {
		t.Fatal("PutKeyBackupSessions stored session data that is not JSON")
	}
}
