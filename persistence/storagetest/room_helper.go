package storagetest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"sort"
	"strings"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// tuple is a (type, state key) pair.
type tuple struct{ Type, Key string }

// room drives one room through a store the way a room actor would, and
// remembers what the store should then hold.
type room struct {
	s        persistence.Store
	id       string
	version  string
	nid      persistence.RoomNID
	epoch    int64
	snapshot persistence.StateSnapshotNID
	blocks   []persistence.StateBlockNID
	depth    int64
	n        int
	// hashIDs makes event IDs look like real ones (hashes), so that their
	// index entries land at random places rather than at the end.
	hashIDs bool

	state  map[tuple]string            // current state: tuple → event ID
	before map[string]map[tuple]string // event ID → state before it
	events []string                    // committed event IDs, in order
	pos    map[string]persistence.StreamPos
	json   map[string]string
}

func newRoom(s persistence.Store, id string) *room {
	return &room{
		s: s, id: id, version: "10",
		state: map[tuple]string{}, before: map[string]map[tuple]string{},
		pos: map[string]persistence.StreamPos{}, json: map[string]string{},
	}
}

func ptr(s string) *string { return &s }

// eventID is the ID of the room's r.n-th event.
func (r *room) eventID() string {
	if r.hashIDs {
		return hashEventID(r.id, r.n)
	}
	return fmt.Sprintf("$%s-%d", strings.TrimPrefix(r.id, "!"), r.n)
}

// hashEventID is an event ID shaped like those of room versions 4 and up:
// an unpadded URL-safe base64 SHA-256 hash.
func hashEventID(roomID string, n int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", roomID, n))
	return "$" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// event makes the next event of the room. Its JSON is deliberately not
// canonical (spacing, escapes, non-ASCII) so that exactness is tested.
func (r *room) event(typ string, stateKey *string, sender, content string) persistence.NewEvent {
	r.n++
	id := r.eventID()
	sk := ""
	if stateKey != nil {
		sk = fmt.Sprintf(`, "state_key":%q`, *stateKey)
	}
	js := fmt.Sprintf(`{"type":%q%s,  "sender":%q, "room_id":%q, "content":%s, "unsigned":{"note":"h\u00e9llo ✓ \"%d\""}}`,
		typ, sk, sender, r.id, content, r.n)
	return persistence.NewEvent{
		EventID: id, JSON: []byte(js), Type: typ, StateKey: stateKey, Sender: sender,
		Depth: r.depth + int64(r.n), OriginServerTS: 1_700_000_000_000 + int64(r.n),
	}
}

func (r *room) member(user, membership string) persistence.NewEvent {
	ev := r.event("m.room.member", ptr(user), user, fmt.Sprintf(`{"membership":%q}`, membership))
	ev.Membership = membership
	return ev
}

func (r *room) message(sender, body string) persistence.NewEvent {
	return r.event("m.room.message", nil, sender, fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body))
}

// request is the commit request the room would send for evs.
func (r *room) request(evs ...persistence.NewEvent) persistence.CommitRequest {
	req := persistence.CommitRequest{
		RoomNID: r.nid, Epoch: r.epoch, Snapshot: r.snapshot, Blocks: r.blocks, Events: evs,
		Depth: r.depth + int64(len(evs)),
	}
	if r.nid == 0 {
		req.NewRoom = &persistence.NewRoom{RoomID: r.id, Version: r.version}
	}
	if len(evs) > 0 {
		req.Extremities = []string{evs[len(evs)-1].EventID}
	}
	return req
}

// commit sends evs as one batch; on success the room moves on.
func (r *room) commit(ctx context.Context, evs ...persistence.NewEvent) (*persistence.CommitResult, error) {
	req := r.request(evs...)
	res, err := r.s.CommitEvents(ctx, req)
	if err != nil {
		return nil, err
	}
	r.nid, r.epoch, r.snapshot, r.blocks, r.depth = res.RoomNID, res.Epoch, res.Snapshot, res.Blocks, req.Depth
	for i, ev := range evs {
		r.before[ev.EventID] = maps.Clone(r.state)
		if ev.StateKey != nil {
			r.state[tuple{ev.Type, *ev.StateKey}] = ev.EventID
		}
		r.events = append(r.events, ev.EventID)
		if i < len(res.StreamPos) {
			r.pos[ev.EventID] = res.StreamPos[i]
		}
		r.json[ev.EventID] = string(ev.JSON)
	}
	return res, nil
}

func (r *room) mustCommit(t testing.TB, evs ...persistence.NewEvent) *persistence.CommitResult {
	t.Helper()
	res, err := r.commit(context.Background(), evs...)
	if err != nil {
		t.Fatalf("commit to %s: %v", r.id, err)
	}
	if len(res.EventNIDs) != len(evs) || len(res.StreamPos) != len(evs) {
		t.Fatalf("commit of %d events returned %d NIDs and %d positions", len(evs), len(res.EventNIDs), len(res.StreamPos))
	}
	return res
}

// create commits the usual first batch: create, the creator's join, power
// levels and join rules.
func (r *room) create(t testing.TB, creator string) *persistence.CommitResult {
	t.Helper()
	return r.mustCommit(t,
		r.event("m.room.create", ptr(""), creator, fmt.Sprintf(`{"creator":%q,"room_version":%q}`, creator, r.version)),
		r.member(creator, "join"),
		r.event("m.room.power_levels", ptr(""), creator, fmt.Sprintf(`{"users":{%q:100}}`, creator)),
		r.event("m.room.join_rules", ptr(""), creator, `{"join_rule":"public"}`),
	)
}

// stateOf reads a snapshot as tuple → event ID, checking each event is
// complete.
func (r *room) stateOf(t testing.TB, snapshot persistence.StateSnapshotNID) map[tuple]string {
	t.Helper()
	evs, err := r.s.SnapshotEvents(context.Background(), snapshot)
	if err != nil {
		t.Fatalf("SnapshotEvents(%d): %v", snapshot, err)
	}
	got := map[tuple]string{}
	for _, ev := range evs {
		r.checkStored(t, &ev)
		if ev.StateKey == nil {
			t.Fatalf("snapshot %d holds non-state event %s", snapshot, ev.EventID)
		}
		k := tuple{ev.Type, *ev.StateKey}
		if prev, dup := got[k]; dup {
			t.Fatalf("snapshot %d holds both %s and %s for %v", snapshot, prev, ev.EventID, k)
		}
		got[k] = ev.EventID
	}
	return got
}

// checkStored checks an event read back against what was committed.
func (r *room) checkStored(t testing.TB, ev *persistence.StoredEvent) {
	t.Helper()
	want, ok := r.json[ev.EventID]
	switch {
	case !ok:
		t.Fatalf("read back %s, which was never committed to %s", ev.EventID, r.id)
	case string(ev.JSON) != want:
		t.Fatalf("%s JSON = %s, want exactly %s", ev.EventID, ev.JSON, want)
	case ev.RoomID != r.id || ev.RoomNID != r.nid || ev.RoomVersion != r.version:
		t.Fatalf("%s room = %s/%d/%s, want %s/%d/%s", ev.EventID, ev.RoomID, ev.RoomNID, ev.RoomVersion, r.id, r.nid, r.version)
	case ev.NID <= 0 || ev.StreamPos != r.pos[ev.EventID]:
		t.Fatalf("%s NID %d stream position %d, want >0 and %d", ev.EventID, ev.NID, ev.StreamPos, r.pos[ev.EventID])
	case ev.Type == "" || ev.Sender == "" || ev.Depth <= 0 || ev.OriginServerTS <= 0:
		t.Fatalf("%s is incomplete: %+v", ev.EventID, ev)
	case !strings.Contains(want, fmt.Sprintf(`"type":%q`, ev.Type)):
		t.Fatalf("%s type %q is not the one committed", ev.EventID, ev.Type)
	case ev.StateKey != nil && !strings.Contains(want, fmt.Sprintf(`"state_key":%q`, *ev.StateKey)):
		t.Fatalf("%s state key %q is not the one committed", ev.EventID, *ev.StateKey)
	case ev.StateKey == nil && strings.Contains(want, `"state_key"`):
		t.Fatalf("%s lost its state key", ev.EventID)
	}
}

// checkStateBefore checks that every committed event records exactly the
// state before it.
func (r *room) checkStateBefore(t testing.TB) {
	t.Helper()
	for _, id := range r.events {
		ev, err := r.s.EventByID(context.Background(), id)
		if err != nil {
			t.Fatalf("EventByID(%s): %v", id, err)
		}
		r.checkStored(t, ev)
		want := r.before[id]
		if len(want) == 0 {
			if ev.StateBefore != 0 {
				t.Fatalf("%s (the first event) has StateBefore %d, want 0", id, ev.StateBefore)
			}
			continue
		}
		if got := r.stateOf(t, ev.StateBefore); !maps.Equal(got, want) {
			t.Fatalf("state before %s (snapshot %d):\n got %v\nwant %v", id, ev.StateBefore, sorted(got), sorted(want))
		}
	}
}

func sorted(m map[tuple]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s/%s=%s", k.Type, k.Key, v))
	}
	sort.Strings(out)
	return out
}

func eventIDs(evs []persistence.StoredEvent) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.EventID
	}
	return ids
}
