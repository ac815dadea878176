package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/rooms"
)

// storeRoom creates a public room with a few messages in the configured
// store, as the room actor would: built, applied, committed per batch.
func storeRoom(t *testing.T, cfg *config.Config, roomID string, messagesToSend int) {
	t.Helper()
	ctx := context.Background()
	store, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	signer := &rooms.Signer{ServerName: spec.ServerName(cfg.ServerName), KeyID: key.KeyID, Key: key.Private}
	creator := "@alice:" + cfg.ServerName
	r, err := rooms.NewRoom(roomID, "11")
	if err != nil {
		t.Fatal(err)
	}
	contents, err := (&rooms.CreateRequest{Preset: "public_chat"}).Compose(creator, "11", rooms.CreatorProfile{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < messagesToSend; i++ {
		body, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": "hello"})
		contents = append(contents, &messages.EventContent{Sender: creator, Type: "m.room.message", Content: body})
	}
	commit := func(newRoom *persistence.NewRoom, evs []gomatrixserverlib.PDU) {
		req := persistence.CommitRequest{NewRoom: newRoom, RoomNID: r.NID, Epoch: r.Epoch, Snapshot: r.Snapshot, Blocks: r.Blocks}
		for _, ev := range evs {
			ne := persistence.NewEvent{EventID: ev.EventID(), JSON: ev.JSON(), Type: ev.Type(), StateKey: ev.StateKey(),
				Sender: string(ev.SenderID()), Depth: ev.Depth(), OriginServerTS: int64(ev.OriginServerTS())}
			if ev.Type() == spec.MRoomMember {
				ne.Membership, _ = ev.Membership()
			}
			req.Events = append(req.Events, ne)
		}
		last := evs[len(evs)-1]
		req.Extremities, req.Depth = []string{last.EventID()}, last.Depth()
		res, err := store.CommitEvents(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		r.NID, r.Epoch, r.Snapshot, r.Blocks = res.RoomNID, res.Epoch, res.Snapshot, res.Blocks
	}
	var batch []gomatrixserverlib.PDU
	for i, c := range contents {
		ev, err := r.Build(c, time.Now(), signer)
		if err != nil {
			t.Fatal(err)
		}
		r.Apply(ev)
		batch = append(batch, ev)
		if i == 4 || i == len(contents)-1 { // the initial state, then the messages
			var newRoom *persistence.NewRoom
			if i == 4 {
				newRoom = &persistence.NewRoom{RoomID: roomID, Version: "11"}
			}
			commit(newRoom, batch)
			batch = nil
		}
	}
}

func TestVerifyRoomsPassesConsistentRooms(t *testing.T) {
	cfgPath, cfg := sqliteConfig(t)
	storeRoom(t, cfg, "!one:example.org", 3)
	storeRoom(t, cfg, "!two:example.org", 1)
	code, out, errOut := runCmd(t, "", "verify-rooms", "-config", cfgPath)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{
		"ok        !one:example.org (8 events, 5 state, depth 8)\n",
		"ok        !two:example.org (6 events, 5 state, depth 6)\n",
		"2 rooms verified: 2 consistent, 0 with problems (0 problems)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd(t, "", "verify-rooms", "-config", cfgPath, "-room", "!two:example.org")
	if code != 0 || strings.Contains(out, "!one") || !strings.Contains(out, "1 rooms verified: 1 consistent") {
		t.Fatalf("-room: exit %d:\n%s", code, out)
	}
}

func TestVerifyRoomsReportsAnInconsistentRoom(t *testing.T) {
	cfgPath, cfg := sqliteConfig(t)
	storeRoom(t, cfg, "!good:example.org", 2)
	storeRoom(t, cfg, "!bad:example.org", 2)
	db, err := sql.Open("sqlite", cfg.Database.SQLitePath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The bad room loses its current join rules and says bob is a member.
	for _, q := range []string{
		`DELETE FROM current_state WHERE room_nid = (SELECT room_nid FROM rooms WHERE room_id = '!bad:example.org')
			AND event_type_nid = (SELECT event_type_nid FROM event_types WHERE event_type = 'm.room.join_rules')`,
		`INSERT INTO memberships (room_nid, user_id, membership, event_nid, stream_pos, forgotten)
			SELECT room_nid, '@bob:example.org', 'join', event_nid, stream_pos, FALSE FROM events
			WHERE room_nid = (SELECT room_nid FROM rooms WHERE room_id = '!bad:example.org') ORDER BY stream_pos DESC LIMIT 1`,
	} {
		if res, err := db.Exec(q); err != nil {
			t.Fatal(err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s changed %d rows", q, n)
		}
	}
	code, out, errOut := runCmd(t, "", "verify-rooms", "-config", cfgPath)
	if code != 1 || !strings.Contains(errOut, "1 of 2 rooms are not consistent with their events") {
		t.Fatalf("exit %d, stderr %q:\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"ok        !good:example.org",
		"PROBLEMS  !bad:example.org (7 events): 2\n",
		`  current_state: not the replayed state: (m.room.join_rules, "") stored nothing, replayed $`,
		"  membership $",
		"a membership row for @bob:example.org (join) but no member event in the state\n",
		"2 rooms verified: 1 consistent, 1 with problems (2 problems)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// At most -max-problems of them are printed.
	code, out, _ = runCmd(t, "", "verify-rooms", "-config", cfgPath, "-room", "!bad:example.org", "-max-problems", "1")
	if code != 1 || !strings.Contains(out, "… and 1 more") || strings.Contains(out, "@bob") {
		t.Fatalf("-max-problems 1: exit %d:\n%s", code, out)
	}
}

func TestVerifyRoomsOfAnUnknownRoomFails(t *testing.T) {
	cfgPath, _ := sqliteConfig(t)
	code, _, errOut := runCmd(t, "", "verify-rooms", "-config", cfgPath, "-room", "!nowhere:example.org")
	if code != 1 || !strings.Contains(errOut, "room !nowhere:example.org is not stored") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	code, _, errOut = runCmd(t, "", "verify-rooms", "-config", cfgPath, "-max-problems", "-1")
	if code != 2 || !strings.Contains(errOut, "-max-problems must not be negative") {
		t.Fatalf("negative -max-problems: exit %d, %q", code, errOut)
	}
	// An empty database is consistent.
	code, out, _ := runCmd(t, "", "verify-rooms", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "0 rooms verified") {
		t.Fatalf("empty database: exit %d, %q", code, out)
	}
}
