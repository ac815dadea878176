package rooms_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/backends"
	"github.com/soma-chat/soma/persistence/pgtest"
	"github.com/soma-chat/soma/rooms"
)

// verifyFixture builds rooms the way the room actor does (Room.Build and
// Apply, then one CommitEvents per batch) on a real store, and names the
// events it commits so that tests can corrupt them.
type verifyFixture struct {
	t      *testing.T
	store  persistence.Store
	dbPath string // the SQLite file, "" on PostgreSQL
	signer *rooms.Signer
	room   *rooms.Room
	ids    map[string]string // name → event ID
	events int               // committed
}

const (
	vfAlice = "@alice:test.local"
	vfBob   = "@bob:test.local"
	vfCarol = "@carol:test.local"
)

func newVerifyFixture(t *testing.T, backend string) *verifyFixture {
	t.Helper()
	f := &verifyFixture{t: t, signer: testSigner(t), ids: map[string]string{}}
	cfg := backends.Config{Backend: backend}
	switch backend {
	case backends.SQLite:
		f.dbPath = filepath.Join(t.TempDir(), "soma.db")
		cfg.SQLitePath = f.dbPath
	case backends.Postgres:
		cfg.PostgresDSN = pgtest.DSN(t)
	}
	s, err := backends.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f.store = s
	return f
}

// create commits a public room's initial events as its first batch.
func (f *verifyFixture) create(roomID, version string) {
	f.t.Helper()
	r, err := rooms.NewRoom(roomID, version)
	if err != nil {
		f.t.Fatal(err)
	}
	req := &rooms.CreateRequest{Preset: "public_chat", Name: ptrTo("Tea")}
	contents, err := req.Compose(vfAlice, version, rooms.CreatorProfile{DisplayName: "Alice"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.room = r
	var evs []gomatrixserverlib.PDU
	for _, c := range contents {
		evs = append(evs, f.build(c))
	}
	f.ids["create"] = evs[0].EventID()
	f.commit(&persistence.NewRoom{RoomID: roomID, Version: version}, evs)
}

func ptrTo[T any](v T) *T { return &v }

// build builds and applies one event (the actor applies after the commit;
// the order does not matter to what is stored).
func (f *verifyFixture) build(c *messages.EventContent) gomatrixserverlib.PDU {
	f.t.Helper()
	ev, err := f.room.Build(c, time.Now(), f.signer)
	if err != nil {
		f.t.Fatalf("building %s from %s: %v", c.Type, c.Sender, err)
	}
	f.room.Apply(ev)
	return ev
}

func (f *verifyFixture) commit(newRoom *persistence.NewRoom, evs []gomatrixserverlib.PDU) {
	f.t.Helper()
	r := f.room
	req := persistence.CommitRequest{NewRoom: newRoom, RoomNID: r.NID, Epoch: r.Epoch, Snapshot: r.Snapshot, Blocks: r.Blocks}
	for _, ev := range evs {
		ne := persistence.NewEvent{
			EventID: ev.EventID(), JSON: ev.JSON(), Type: ev.Type(), StateKey: ev.StateKey(),
			Sender: string(ev.SenderID()), Depth: ev.Depth(), OriginServerTS: int64(ev.OriginServerTS()),
		}
		if ev.Type() == spec.MRoomMember {
			ne.Membership, _ = ev.Membership()
		}
		req.Events = append(req.Events, ne)
	}
	last := evs[len(evs)-1]
	req.Extremities, req.Depth = []string{last.EventID()}, last.Depth()
	res, err := f.store.CommitEvents(context.Background(), req)
	if err != nil {
		f.t.Fatalf("commit: %v", err)
	}
	r.NID, r.Epoch, r.Snapshot, r.Blocks = res.RoomNID, res.Epoch, res.Snapshot, res.Blocks
	f.events += len(evs)
}

func message(sender, body string) *messages.EventContent {
	c, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	return &messages.EventContent{Sender: sender, Type: "m.room.message", Content: c}
}

func stateContent(sender, typ, key string, content any) *messages.EventContent {
	c, _ := json.Marshal(content)
	return &messages.EventContent{Sender: sender, Type: typ, StateKey: &key, Content: c}
}

func member(user, membership string) *messages.EventContent {
	return stateContent(user, spec.MRoomMember, user, map[string]string{"membership": membership})
}

// send builds named events and commits them as one batch.
func (f *verifyFixture) send(named ...any) {
	f.t.Helper()
	var evs []gomatrixserverlib.PDU
	for i := 0; i < len(named); i += 2 {
		ev := f.build(named[i+1].(*messages.EventContent))
		if name := named[i].(string); name != "" {
			f.ids[name] = ev.EventID()
		}
		evs = append(evs, ev)
	}
	f.commit(nil, evs)
}

// populate gives the room history of every kind: messages, joins, a
// leave, state overridden, batches of several events, and members enough
// for the state to be compacted when many is set.
func (f *verifyFixture) populate(many bool) {
	f.t.Helper()
	f.send("msg1", message(vfAlice, "hello 1"))
	f.send("msg2", message(vfAlice, "hello 2"))
	f.send("bobJoin", member(vfBob, "join"))
	f.send("topic1", stateContent(vfAlice, "m.room.topic", "", map[string]string{"topic": "one"}))
	f.send("bobMsg", message(vfBob, "hi"),
		"topic2", stateContent(vfAlice, "m.room.topic", "", map[string]string{"topic": "two"}),
		"carolJoin", member(vfCarol, "join"),
		"carolLeave", member(vfCarol, "leave"))
	if many {
		var batch []any
		for i := 0; i < persistence.MaxSnapshotBlocks+6; i++ {
			batch = append(batch, "", member(fmt.Sprintf("@u%d:test.local", i), "join"))
			if i%10 == 0 {
				batch = append(batch, "", message(vfAlice, fmt.Sprintf("m%d", i)))
			}
		}
		f.send(batch...)
		f.send("", stateContent(vfAlice, "m.room.topic", "", map[string]string{"topic": "three"}))
	}
	f.send("last", message(vfAlice, "the end"))
}

func (f *verifyFixture) verify() *rooms.VerifyReport {
	f.t.Helper()
	rep, err := rooms.VerifyRoom(context.Background(), f.store, f.room.ID)
	if err != nil {
		f.t.Fatalf("VerifyRoom: %v", err)
	}
	return rep
}

func problemsText(rep *rooms.VerifyReport) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

func TestVerifyRoomFindsAHealthyRoomConsistent(t *testing.T) {
	for _, backend := range []string{backends.SQLite, backends.Postgres} {
		for _, version := range []string{"10", "11"} {
			t.Run(backend+"/v"+version, func(t *testing.T) {
				f := newVerifyFixture(t, backend)
				f.create("!healthy:test.local", version)
				f.populate(true)
				before, err := f.store.RoomHead(context.Background(), f.room.ID)
				if err != nil {
					t.Fatal(err)
				}
				rep := f.verify()
				if !rep.OK() {
					t.Fatalf("a healthy room has problems:%s", problemsText(rep))
				}
				wantEvents := f.events
				if rep.Events != wantEvents || rep.StateEvents < persistence.MaxSnapshotBlocks || rep.Depth != f.room.Depth ||
					!slices.Equal(rep.Extremities, f.room.Extremities) || rep.Version != version || rep.Attempts != 1 {
					t.Fatalf("report %+v; want %d events, depth %d, extremities %v", rep, wantEvents, f.room.Depth, f.room.Extremities)
				}
				// Verification reads only: the live activation keeps its epoch
				// and can still commit.
				after, err := f.store.RoomHead(context.Background(), f.room.ID)
				if err != nil || after.Epoch != before.Epoch {
					t.Fatalf("epoch %d before verifying, %+v, %v after", before.Epoch, after, err)
				}
				f.send("", message(vfAlice, "after verifying"))
				if rep := f.verify(); !rep.OK() {
					t.Fatalf("problems after another send:%s", problemsText(rep))
				}
			})
		}
	}
}

func TestVerifyRoomOfAnUnknownRoomIsNotFound(t *testing.T) {
	f := newVerifyFixture(t, backends.SQLite)
	_, err := rooms.VerifyRoom(context.Background(), f.store, "!nowhere:test.local")
	if !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("VerifyRoom of an unknown room: %v, want ErrNotFound", err)
	}
}

// corruption damages a populated room; want is a problem that must then be
// reported, with its event when event names one.
type corruption struct {
	name   string
	damage func(f *verifyFixture, db *sql.DB)
	want   rooms.ProblemKind
	event  string // a name in f.ids, or ""
}

func TestVerifyRoomReportsEveryCorruption(t *testing.T) {
	for _, c := range corruptions() {
		t.Run(c.name, func(t *testing.T) {
			f := newVerifyFixture(t, backends.SQLite)
			f.create("!corrupt:test.local", "11")
			f.populate(false)
			if rep := f.verify(); !rep.OK() {
				t.Fatalf("problems before the damage:%s", problemsText(rep))
			}
			db, err := sql.Open("sqlite", f.dbPath+"?_busy_timeout=10000")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			c.damage(f, db)
			rep := f.verify()
			wantEvent := ""
			if c.event != "" {
				wantEvent = f.ids[c.event]
			}
			for _, p := range rep.Problems {
				if p.Kind == c.want && (wantEvent == "" || p.EventID == wantEvent) && p.RoomID == f.room.ID {
					t.Logf("reported:%s", problemsText(rep))
					return
				}
			}
			t.Fatalf("no %s problem (event %q) reported; the report:%s", c.want, wantEvent, problemsText(rep))
		})
	}
}

func corruptions() []corruption {
	return []corruption{
		{"head points at an older snapshot", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE room_heads SET snapshot_nid = (SELECT state_before_nid FROM events WHERE event_id = ?)`, f.ids["topic1"])
		}, rooms.ProblemHead, ""},
		{"head blocks are not its snapshot's", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE room_heads SET block_nids = (SELECT s.block_nids FROM state_snapshots s
				JOIN events e ON e.state_before_nid = s.snapshot_nid WHERE e.event_id = ?)`, f.ids["topic1"])
		}, rooms.ProblemHead, ""},
		{"head row deleted", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `DELETE FROM room_heads`)
		}, rooms.ProblemHead, ""},
		{"head lists a second extremity", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE room_heads SET extremities = json_array(?, ?)`, f.ids["last"], f.ids["msg1"])
		}, rooms.ProblemExtremities, ""},
		{"head lists an old extremity", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE room_heads SET extremities = json_array(?)`, f.ids["msg2"])
		}, rooms.ProblemExtremities, ""},
		{"head depth is wrong", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE room_heads SET depth = depth + 3`)
		}, rooms.ProblemDepth, ""},
		{"current state row deleted", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `DELETE FROM current_state WHERE event_nid = (SELECT event_nid FROM events WHERE event_id = ?)`, f.ids["topic2"])
		}, rooms.ProblemCurrentState, ""},
		{"current state row points at an overridden event", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE current_state SET event_nid = (SELECT event_nid FROM events WHERE event_id = ?)
				WHERE event_nid = (SELECT event_nid FROM events WHERE event_id = ?)`, f.ids["topic1"], f.ids["topic2"])
		}, rooms.ProblemCurrentState, ""},
		{"membership changed", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE memberships SET membership = 'leave' WHERE user_id = ?`, vfBob)
		}, rooms.ProblemMembership, "bobJoin"},
		{"membership points at another event", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE memberships SET event_nid = (SELECT event_nid FROM events WHERE event_id = ?) WHERE user_id = ?`, f.ids["carolJoin"], vfCarol)
		}, rooms.ProblemMembership, "carolLeave"},
		{"membership row deleted", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `DELETE FROM memberships WHERE user_id = ?`, vfBob)
		}, rooms.ProblemMembership, "bobJoin"},
		{"membership row of a non-member", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `INSERT INTO memberships (room_nid, user_id, membership, event_nid, stream_pos, forgotten)
				SELECT room_nid, '@mallory:test.local', 'join', event_nid, stream_pos, FALSE FROM events WHERE event_id = ?`, f.ids["msg1"])
		}, rooms.ProblemMembership, "msg1"},
		{"event records the wrong state before it", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE events SET state_before_nid = (SELECT state_before_nid FROM events WHERE event_id = ?) WHERE event_id = ?`, f.ids["topic1"], f.ids["last"])
		}, rooms.ProblemStateBefore, "last"},
		{"state block entry points at another event", func(f *verifyFixture, db *sql.DB) {
			// The block that made topic2 the state: every later snapshot
			// uses it.
			f.exec(db, `UPDATE state_blocks SET event_nid = (SELECT event_nid FROM events WHERE event_id = ?)
				WHERE event_nid = (SELECT event_nid FROM events WHERE event_id = ?)`, f.ids["msg1"], f.ids["topic2"])
		}, rooms.ProblemStateBefore, "carolJoin"},
		{"state block deleted", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `DELETE FROM state_blocks WHERE event_nid = (SELECT event_nid FROM events WHERE event_id = ?)`, f.ids["bobJoin"])
		}, rooms.ProblemSnapshot, "topic1"},
		{"event deleted", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `DELETE FROM events WHERE event_id = ?`, f.ids["msg2"])
		}, rooms.ProblemReference, "bobJoin"},
		{"event content tampered with", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE events SET event_json = replace(event_json, 'hello 1', 'hullo 1') WHERE event_id = ?`, f.ids["msg1"])
		}, rooms.ProblemEvent, "msg1"},
		{"event timestamp tampered with", func(f *verifyFixture, db *sql.DB) {
			ev, err := f.store.EventByID(context.Background(), f.ids["msg2"])
			if err != nil {
				f.t.Fatal(err)
			}
			ts := fmt.Sprintf(`"origin_server_ts":%d`, ev.OriginServerTS)
			f.exec(db, `UPDATE events SET event_json = replace(event_json, ?, ?) WHERE event_id = ?`, ts, ts+"1", f.ids["msg2"])
		}, rooms.ProblemEvent, "msg2"},
		{"event column disagrees with its JSON", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `UPDATE events SET sender = '@mallory:test.local' WHERE event_id = ?`, f.ids["bobMsg"])
		}, rooms.ProblemEvent, "bobMsg"},
		{"event filed under another room", func(f *verifyFixture, db *sql.DB) {
			f.exec(db, `INSERT INTO rooms (room_nid, room_id, room_version) VALUES (999, '!other:test.local', '11')`)
			f.exec(db, `UPDATE events SET room_nid = 999 WHERE event_id = ?`, f.ids["msg2"])
		}, rooms.ProblemReference, "bobJoin"},
		{"chain forked", func(f *verifyFixture, db *sql.DB) {
			// A properly signed event whose prev_event is not the head: the
			// commit takes it, and the room then has two extremities.
			f.room.Extremities = []string{f.ids["msg2"]}
			f.send("fork", message(vfAlice, "from the past"))
		}, rooms.ProblemFork, ""},
		{"event not allowed by the state before it", func(f *verifyFixture, db *sql.DB) {
			// Mallory's join is built but never stored: her message is
			// authorised against a state that is not the room's.
			const mallory = "@mallory:test.local"
			join, err := f.room.Build(member(mallory, "join"), time.Now(), f.signer)
			if err != nil {
				f.t.Fatal(err)
			}
			saved := maps.Clone(f.room.State)
			f.room.State[rooms.Tuple{EventType: spec.MRoomMember, StateKey: mallory}] = join
			ev, err := f.room.Build(message(mallory, "I was never here"), time.Now(), f.signer)
			if err != nil {
				f.t.Fatal(err)
			}
			f.room.State = saved
			f.ids["intruder"] = ev.EventID()
			f.commit(nil, []gomatrixserverlib.PDU{ev})
		}, rooms.ProblemAuth, "intruder"},
	}
}

func (f *verifyFixture) exec(db *sql.DB, query string, args ...any) {
	f.t.Helper()
	res, err := db.Exec(query, args...)
	if err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		f.t.Fatalf("%s changed nothing", query)
	}
}

// TestVerifyRoomListsEveryProblem damages several parts at once: each is
// reported, not only the first.
func TestVerifyRoomListsEveryProblem(t *testing.T) {
	f := newVerifyFixture(t, backends.SQLite)
	f.create("!many:test.local", "11")
	f.populate(false)
	db, err := sql.Open("sqlite", f.dbPath+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f.exec(db, `UPDATE memberships SET membership = 'ban' WHERE user_id = ?`, vfBob)
	f.exec(db, `UPDATE room_heads SET depth = depth + 1`)
	f.exec(db, `UPDATE events SET state_before_nid = (SELECT state_before_nid FROM events WHERE event_id = ?) WHERE event_id IN (?, ?)`,
		f.ids["msg1"], f.ids["bobMsg"], f.ids["last"])
	rep := f.verify()
	got := map[string]bool{}
	for _, p := range rep.Problems {
		got[string(p.Kind)+" "+p.EventID] = true
	}
	for _, want := range []string{
		"membership " + f.ids["bobJoin"],
		"depth ",
		"state_before " + f.ids["bobMsg"],
		"state_before " + f.ids["last"],
	} {
		if !got[want] {
			t.Errorf("%q not reported; the report:%s", want, problemsText(rep))
		}
	}
}

// movingStore commits once, through the fixture, just before the events
// are first read: the head read before it no longer matches them.
type movingStore struct {
	persistence.Store
	move func()
}

func (m *movingStore) RoomEvents(ctx context.Context, room persistence.RoomNID, from, to persistence.StreamPos, limit int, forward bool) ([]persistence.StoredEvent, error) {
	if move := m.move; move != nil {
		m.move = nil
		move()
	}
	return m.Store.RoomEvents(ctx, room, from, to, limit, forward)
}

func TestVerifyRoomRereadsARoomThatMovedWhileRead(t *testing.T) {
	f := newVerifyFixture(t, backends.SQLite)
	f.create("!moving:test.local", "11")
	f.populate(false)
	moved := false
	store := &movingStore{Store: f.store, move: func() {
		f.send("", message(vfAlice, "while verifying"))
		moved = true
	}}
	rep, err := rooms.VerifyRoom(context.Background(), store, f.room.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !moved || !rep.OK() || rep.Attempts != 2 || rep.Events != f.events {
		t.Fatalf("moved %v, report %+v:%s; want a clean second attempt over %d events", moved, rep, problemsText(rep), f.events)
	}
}
