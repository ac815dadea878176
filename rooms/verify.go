package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// Verification: a room's stored head, state snapshots and projections are
// recomputed from its stored events, replayed in stream order, and every
// difference is reported. It reads only: it never claims the room, so it
// can run beside a live server (see VerifyRoom for what that costs).

// VerifyStore is what VerifyRoom reads.
type VerifyStore interface {
	RoomInfo(ctx context.Context, roomID string) (persistence.RoomNID, string, error)
	RoomHead(ctx context.Context, roomID string) (*persistence.RoomHead, error)
	RoomEvents(ctx context.Context, room persistence.RoomNID, from, to persistence.StreamPos, limit int, forward bool) ([]persistence.StoredEvent, error)
	SnapshotEvents(ctx context.Context, snapshot persistence.StateSnapshotNID) ([]persistence.StoredEvent, error)
	SnapshotBlocks(ctx context.Context, snapshot persistence.StateSnapshotNID) ([]persistence.StateBlockNID, error)
	StateBlockEntries(ctx context.Context, blocks []persistence.StateBlockNID) ([]persistence.StateBlockEntry, error)
	CurrentState(ctx context.Context, room persistence.RoomNID) ([]persistence.StoredEvent, error)
	RoomMemberships(ctx context.Context, room persistence.RoomNID) ([]persistence.Membership, error)
}

// ProblemKind says which part of a room's storage disagrees with its events.
type ProblemKind string

// The kinds of problem VerifyRoom reports.
const (
	// ProblemUnreadable: a read failed on the data (missing or dangling
	// rows); what depends on it is not verified.
	ProblemUnreadable ProblemKind = "unreadable"
	// ProblemEvent: an event does not parse, its ID is not the hash of its
	// JSON, its content does not match its content hash, it names another
	// room, or its columns disagree with its JSON.
	ProblemEvent ProblemKind = "event"
	// ProblemReference: a prev_event or auth_event is not an earlier event
	// of the room.
	ProblemReference ProblemKind = "reference"
	// ProblemDepth: an event is not deeper than its prev_events, or the
	// head's depth is not the deepest event's.
	ProblemDepth ProblemKind = "depth"
	// ProblemAuth: an event is not allowed by the state before it.
	ProblemAuth ProblemKind = "auth"
	// ProblemStateBefore: an event's recorded state before it is not the
	// replayed state.
	ProblemStateBefore ProblemKind = "state_before"
	// ProblemSnapshot: a snapshot or block is malformed: missing or
	// repeated blocks, entries pointing at missing events or filed under
	// another (type, state key).
	ProblemSnapshot ProblemKind = "snapshot"
	// ProblemHead: the head is missing, or its snapshot or blocks are not
	// the replayed final state.
	ProblemHead ProblemKind = "head"
	// ProblemExtremities: the head's forward extremities are not the events
	// no other event follows.
	ProblemExtremities ProblemKind = "extremities"
	// ProblemFork: the room has more than one forward extremity, which its
	// single writer never produces.
	ProblemFork ProblemKind = "fork"
	// ProblemCurrentState: the current_state projection is not the replayed
	// final state.
	ProblemCurrentState ProblemKind = "current_state"
	// ProblemMembership: the memberships projection is not the replayed
	// final state's members.
	ProblemMembership ProblemKind = "membership"
)

// Problem is one discrepancy.
type Problem struct {
	Kind    ProblemKind
	RoomID  string
	EventID string // "" when the problem is the room's, not one event's
	Detail  string
}

func (p Problem) String() string {
	if p.EventID == "" {
		return fmt.Sprintf("%s: %s: %s", p.RoomID, p.Kind, p.Detail)
	}
	return fmt.Sprintf("%s: %s: %s: %s", p.RoomID, p.EventID, p.Kind, p.Detail)
}

// VerifyReport is what VerifyRoom found.
type VerifyReport struct {
	RoomID      string
	Version     string
	Events      int // events replayed
	StateEvents int
	// Extremities and Depth are recomputed from the events.
	Extremities []string
	Depth       int64
	// Problems lists every discrepancy, in the order found.
	Problems []Problem
	// Attempts is how many times the room was read: a room that moves
	// while it is read is read again (see VerifyRoom).
	Attempts int
	// Skipped says why the room was not replayed ("" when it was).
	Skipped string
}

// OK reports whether the room's storage is consistent with its events.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// verifyPage is how many events VerifyRoom reads at a time.
const verifyPage = 1000

// verifyAttempts bounds the re-reads of a room that keeps moving.
const verifyAttempts = 3

// VerifyRoom recomputes a room from its stored events and compares what is
// stored: each event's state before it, the head (snapshot, blocks,
// extremities, depth), the current_state and memberships projections. It
// also checks each event: its ID and content hash, room, columns,
// references, depth, and the auth rules against the replayed state before
// it. It returns persistence.ErrNotFound for an unknown room and an error
// when the context ends; any other failed read is a problem of the room.
//
// The reads are not one transaction: when problems are found and the head
// moved meanwhile (a live server committed), the room is read again, up
// to three times in all. A room being written that fast may still show
// problems: verify a quiet room, or a stopped server, for a definite answer.
func VerifyRoom(ctx context.Context, store VerifyStore, roomID string) (*VerifyReport, error) {
	for attempt := 1; ; attempt++ {
		v := &verifier{store: store, report: &VerifyReport{RoomID: roomID, Attempts: attempt}}
		if err := v.run(ctx); err != nil {
			return nil, err
		}
		if v.report.OK() || attempt == verifyAttempts || v.head == nil {
			return v.report, nil
		}
		after, err := store.RoomHead(ctx, roomID)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if err != nil || sameHead(v.head, after) {
			return v.report, nil
		}
	}
}

func sameHead(a, b *persistence.RoomHead) bool {
	return a.Snapshot == b.Snapshot && a.Depth == b.Depth &&
		slices.Equal(a.Blocks, b.Blocks) && slices.Equal(a.Extremities, b.Extremities)
}

// eventInfo is what the verifier keeps of each replayed event.
type eventInfo struct {
	index int // in stream order
	depth int64
	pos   persistence.StreamPos
	tuple *Tuple // nil for non-state events
}

// reference is a prev_event or auth_event not (yet) seen when its event
// was replayed.
type reference struct {
	from, kind, to string
}

type verifier struct {
	store  VerifyStore
	report *VerifyReport

	head    *persistence.RoomHead
	nid     persistence.RoomNID
	version gomatrixserverlib.IRoomVersion

	events map[string]*eventInfo
	// unfollowed holds the events no replayed event lists in prev_events
	// (so far); ahead holds references to events not replayed yet.
	unfollowed map[string]bool
	ahead      []reference
	state      State // the replayed state after the events so far
	// stored is the state the current event's StateBefore snapshot holds;
	// mismatch holds the tuples where it and the replayed state differ.
	stored   snapshotState
	mismatch map[Tuple]bool
}

func (v *verifier) problem(kind ProblemKind, eventID, format string, args ...any) {
	v.report.Problems = append(v.report.Problems, Problem{
		Kind: kind, RoomID: v.report.RoomID, EventID: eventID, Detail: fmt.Sprintf(format, args...),
	})
}

// unreadable reports a failed read, unless the context ended: that is
// returned as the error of the whole verification.
func (v *verifier) unreadable(ctx context.Context, eventID, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	v.problem(ProblemUnreadable, eventID, "%s: %v", what, err)
	return nil
}

// federated reports whether users of other servers than the room's
// creator's have been members of the room.
func (v *verifier) federated(ctx context.Context, roomID string) (bool, error) {
	members, err := v.store.RoomMemberships(ctx, v.nid)
	if err != nil {
		return false, v.unreadable(ctx, "", "memberships", err)
	}
	_, creator, _ := strings.Cut(roomID, ":")
	for _, m := range members {
		if _, server, _ := strings.Cut(m.UserID, ":"); server != creator {
			return true, nil
		}
	}
	return false, nil
}

func (v *verifier) run(ctx context.Context) error {
	roomID := v.report.RoomID
	nid, version, err := v.store.RoomInfo(ctx, roomID)
	if err != nil {
		return fmt.Errorf("rooms.VerifyRoom: %w", err)
	}
	v.nid, v.report.Version = nid, version
	v.version, err = gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil {
		v.problem(ProblemUnreadable, "", "room version %q: %v", version, err)
		return nil
	}
	v.head, err = v.store.RoomHead(ctx, roomID)
	if err != nil {
		v.head = nil
		if errors.Is(err, persistence.ErrNotFound) {
			v.problem(ProblemHead, "", "the room has no head")
		} else if err := v.unreadable(ctx, "", "head", err); err != nil {
			return err
		}
	}
	if shared, err := v.federated(ctx, roomID); err != nil {
		return err
	} else if shared {
		// Its history here has gaps (it starts at a join over federation),
		// forks and resolved state: the single-writer replay does not apply.
		v.report.Skipped = "the room is shared with other servers"
		return nil
	}
	v.events, v.unfollowed = map[string]*eventInfo{}, map[string]bool{}
	v.state = State{}
	v.stored = snapshotState{state: map[Tuple]string{}}
	v.mismatch = map[Tuple]bool{}
	from := persistence.StreamPos(0)
	for {
		// Every committed event, not only those below MaxStreamPos: a store
		// opened beside a running server does not know its positions.
		page, err := v.store.RoomEvents(ctx, nid, from, math.MaxInt64, verifyPage, true)
		if err != nil {
			return v.unreadable(ctx, "", "events", err)
		}
		for i := range page {
			if err := v.replay(ctx, &page[i]); err != nil {
				return err
			}
		}
		if len(page) < verifyPage {
			break
		}
		from = page[len(page)-1].StreamPos
	}
	if v.report.Events == 0 {
		v.problem(ProblemEvent, "", "the room has no events")
		return nil
	}
	v.finishReferences()
	if v.head != nil {
		if err := v.checkHead(ctx); err != nil {
			return err
		}
	}
	if err := v.checkCurrentState(ctx); err != nil {
		return err
	}
	return v.checkMemberships(ctx)
}

// replay checks one event against the replay so far and advances it.
func (v *verifier) replay(ctx context.Context, se *persistence.StoredEvent) error {
	id := se.EventID
	if _, dup := v.events[id]; dup {
		v.problem(ProblemEvent, id, "stored twice")
		return nil
	}
	info := &eventInfo{index: v.report.Events, depth: se.Depth, pos: se.StreamPos}
	v.report.Events++
	if se.StateKey != nil {
		info.tuple = &Tuple{EventType: se.Type, StateKey: *se.StateKey}
	}
	ev := v.parse(se)
	if ev != nil {
		info.depth = ev.Depth()
		if sk := ev.StateKey(); sk != nil {
			info.tuple = &Tuple{EventType: ev.Type(), StateKey: *sk}
		} else {
			info.tuple = nil
		}
		v.checkEventReferences(id, info, ev)
	}
	v.events[id] = info
	v.unfollowed[id] = true
	if info.depth > v.report.Depth {
		v.report.Depth = info.depth
	}

	// The state before the event, as stored, against the replay.
	if se.StateBefore != v.stored.snapshot {
		changed, err := v.stored.moveTo(ctx, v, id, se.StateBefore)
		if err != nil {
			return err
		}
		for _, t := range changed {
			v.compareTuple(t)
		}
	}
	if len(v.mismatch) > 0 {
		v.problem(ProblemStateBefore, id, "snapshot %d: %s", se.StateBefore, v.describeMismatch())
	}

	if ev != nil {
		if err := gomatrixserverlib.Allowed(ev, v.state, userIDForSender); err != nil {
			v.problem(ProblemAuth, id, "not allowed by the state before it: %v", err)
		}
	}
	if info.tuple != nil {
		v.report.StateEvents++
		if ev != nil {
			v.state[*info.tuple] = ev
		} else {
			// An unparseable state event still moved the stored state:
			// record that the replay cannot say what it holds.
			delete(v.state, *info.tuple)
		}
		v.compareTuple(*info.tuple)
	}
	return nil
}

// parse reads the stored JSON as the room actor loads it and checks it
// against the event's ID, content hash, room and columns. It returns nil
// when the event cannot be replayed: it does not parse, or it is another
// room's.
func (v *verifier) parse(se *persistence.StoredEvent) gomatrixserverlib.PDU {
	id := se.EventID
	ev, err := v.version.NewEventFromTrustedJSONWithEventID(id, se.JSON, false)
	if err != nil {
		v.problem(ProblemEvent, id, "does not parse as a version %s event: %v", v.report.Version, err)
		return nil
	}
	// The stored ID is trusted when loading; here it is recomputed.
	if hashed, err := v.version.NewEventFromTrustedJSON(se.JSON, false); err == nil {
		if computed, err := eventIDOf(hashed); err != nil {
			v.problem(ProblemEvent, id, "its ID cannot be computed: %v", err)
		} else if computed != id {
			v.problem(ProblemEvent, id, "its JSON hashes to %s", computed)
		}
	}
	// The ID covers the redacted event only; the content hash covers the
	// rest. Parsing as a received event checks it (and redacts on failure).
	if checked, err := v.version.NewEventFromUntrustedJSON(se.JSON); err != nil {
		v.problem(ProblemEvent, id, "fails the checks of a received event: %v", err)
	} else if checked.Redacted() {
		v.problem(ProblemEvent, id, "its content does not match its content hash")
	}
	var bad []string
	check := func(what string, stored, inJSON any) {
		if fmt.Sprint(stored) != fmt.Sprint(inJSON) {
			bad = append(bad, fmt.Sprintf("%s %v (JSON says %v)", what, stored, inJSON))
		}
	}
	check("in room", v.report.RoomID, ev.RoomID().String())
	check("type", se.Type, ev.Type())
	check("state key", strPtr(se.StateKey), strPtr(ev.StateKey()))
	check("sender", se.Sender, string(ev.SenderID()))
	check("depth", se.Depth, ev.Depth())
	check("origin_server_ts", se.OriginServerTS, int64(ev.OriginServerTS()))
	if len(bad) > 0 {
		v.problem(ProblemEvent, id, "stored with %s", strings.Join(bad, ", "))
		if ev.RoomID().String() != v.report.RoomID {
			return nil // not this room's: do not replay it
		}
	}
	return ev
}

// eventIDOf computes an event's ID from its JSON; gomatrixserverlib panics
// when it cannot.
func eventIDOf(ev gomatrixserverlib.PDU) (id string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return ev.EventID(), nil
}

func strPtr(s *string) string {
	if s == nil {
		return "<none>"
	}
	return fmt.Sprintf("%q", *s)
}

func (v *verifier) checkCreateVersion(id string, ev gomatrixserverlib.PDU) {
	var c struct {
		RoomVersion *string `json:"room_version"`
	}
	// Absent or malformed, it is the spec's default, version 1.
	_ = json.Unmarshal(ev.Content(), &c)
	got := "1"
	if c.RoomVersion != nil {
		got = *c.RoomVersion
	}
	if got != v.report.Version {
		v.problem(ProblemEvent, id, "the m.room.create says room version %s, the room is stored as %s", got, v.report.Version)
	}
}

// compareTuple records whether the stored state before the current event
// and the replayed state agree on t.
func (v *verifier) compareTuple(t Tuple) {
	stored, inStored := v.stored.state[t]
	ev, inReplay := v.state[t]
	if inStored != inReplay || inStored && stored != ev.EventID() {
		v.mismatch[t] = true
	} else {
		delete(v.mismatch, t)
	}
}

// describeMismatch lists the first few differing tuples.
func (v *verifier) describeMismatch() string {
	ts := make([]Tuple, 0, len(v.mismatch))
	for t := range v.mismatch {
		ts = append(ts, t)
	}
	sortTuples(ts)
	var parts []string
	for i, t := range ts {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ts)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s stored %s, replayed %s", tupleString(t), orNone(v.stored.state[t]), orNone(eventIDIn(v.state, t))))
	}
	return strings.Join(parts, "; ")
}

func eventIDIn(s State, t Tuple) string {
	if ev := s[t]; ev != nil {
		return ev.EventID()
	}
	return ""
}

func orNone(id string) string {
	if id == "" {
		return "nothing"
	}
	return id
}

func tupleString(t Tuple) string { return fmt.Sprintf("(%s, %q)", t.EventType, t.StateKey) }

func sortTuples(ts []Tuple) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].EventType != ts[j].EventType {
			return ts[i].EventType < ts[j].EventType
		}
		return ts[i].StateKey < ts[j].StateKey
	})
}

// checkEventReferences checks the event's place in the room: the create
// event first and alone without prev_events, every prev_event and
// auth_event an earlier event of the room, and a depth greater than its
// prev_events'.
func (v *verifier) checkEventReferences(id string, info *eventInfo, ev gomatrixserverlib.PDU) {
	prevs := ev.PrevEventIDs()
	isCreate := ev.Type() == spec.MRoomCreate && ev.StateKeyEquals("")
	switch {
	case info.index == 0 && !isCreate:
		v.problem(ProblemEvent, id, "the room's first event is a %s, not its m.room.create", ev.Type())
	case info.index > 0 && isCreate:
		v.problem(ProblemEvent, id, "a second m.room.create")
	case isCreate && len(prevs) > 0:
		v.problem(ProblemReference, id, "the m.room.create has prev_events %v", prevs)
	case !isCreate && len(prevs) == 0:
		v.problem(ProblemReference, id, "no prev_events")
	}
	if isCreate {
		v.checkCreateVersion(id, ev)
	}
	for _, p := range prevs {
		prev, ok := v.events[p]
		if !ok {
			v.ahead = append(v.ahead, reference{id, "prev_event", p})
			continue
		}
		delete(v.unfollowed, p)
		if prev.depth >= info.depth {
			v.problem(ProblemDepth, id, "depth %d is not greater than prev_event %s's %d", info.depth, p, prev.depth)
		}
	}
	for _, a := range ev.AuthEventIDs() {
		if _, ok := v.events[a]; !ok {
			v.ahead = append(v.ahead, reference{id, "auth_event", a})
		}
	}
}

// finishReferences reports the references to events that came later or
// never, and works out the forward extremities.
func (v *verifier) finishReferences() {
	for _, r := range v.ahead {
		if _, ok := v.events[r.to]; ok {
			v.problem(ProblemReference, r.from, "%s %s comes later in the stream", r.kind, r.to)
			if r.kind == "prev_event" {
				delete(v.unfollowed, r.to)
			}
		} else {
			v.problem(ProblemReference, r.from, "%s %s is not stored in the room", r.kind, r.to)
		}
	}
	for id := range v.unfollowed {
		v.report.Extremities = append(v.report.Extremities, id)
	}
	sort.Slice(v.report.Extremities, func(i, j int) bool {
		return v.events[v.report.Extremities[i]].index < v.events[v.report.Extremities[j]].index
	})
	if n := len(v.report.Extremities); n != 1 {
		v.problem(ProblemFork, "", "%d forward extremities %v; the room's single writer leaves exactly one", n, v.report.Extremities)
	}
}

// checkHead compares the head with the replay's end.
func (v *verifier) checkHead(ctx context.Context) error {
	h := v.head
	if !sameSet(h.Extremities, v.report.Extremities) {
		v.problem(ProblemExtremities, "", "the head has %v, the events leave %v", h.Extremities, v.report.Extremities)
	}
	if h.Depth != v.report.Depth {
		v.problem(ProblemDepth, "", "the head has depth %d, the deepest event %d", h.Depth, v.report.Depth)
	}
	blocks, err := v.store.SnapshotBlocks(ctx, h.Snapshot)
	if err != nil {
		if err := v.unreadable(ctx, "", fmt.Sprintf("the head's snapshot %d", h.Snapshot), err); err != nil {
			return err
		}
	} else if !slices.Equal(blocks, h.Blocks) {
		v.problem(ProblemHead, "", "the head lists blocks %v, its snapshot %d has %v", h.Blocks, h.Snapshot, blocks)
	}
	evs, err := v.store.SnapshotEvents(ctx, h.Snapshot)
	if err != nil {
		return v.unreadable(ctx, "", fmt.Sprintf("the head's snapshot %d", h.Snapshot), err)
	}
	if diff := v.diffState(evs); diff != "" {
		v.problem(ProblemHead, "", "the head's snapshot %d is not the replayed state: %s", h.Snapshot, diff)
	}
	return nil
}

func (v *verifier) checkCurrentState(ctx context.Context) error {
	evs, err := v.store.CurrentState(ctx, v.nid)
	if err != nil {
		return v.unreadable(ctx, "", "current state", err)
	}
	if diff := v.diffState(evs); diff != "" {
		v.problem(ProblemCurrentState, "", "not the replayed state: %s", diff)
	}
	return nil
}

// diffState compares stored state events with the replayed state; "" when
// they agree.
func (v *verifier) diffState(evs []persistence.StoredEvent) string {
	stored := map[Tuple]string{}
	var diffs []string
	for _, ev := range evs {
		if ev.StateKey == nil {
			diffs = append(diffs, fmt.Sprintf("non-state event %s", ev.EventID))
			continue
		}
		if ev.RoomID != v.report.RoomID {
			diffs = append(diffs, fmt.Sprintf("%s is of room %s", ev.EventID, ev.RoomID))
		}
		t := Tuple{EventType: ev.Type, StateKey: *ev.StateKey}
		if prev, dup := stored[t]; dup {
			diffs = append(diffs, fmt.Sprintf("%s twice (%s and %s)", tupleString(t), prev, ev.EventID))
		}
		stored[t] = ev.EventID
	}
	var ts []Tuple
	for t := range stored {
		ts = append(ts, t)
	}
	for t := range v.state {
		if _, ok := stored[t]; !ok {
			ts = append(ts, t)
		}
	}
	sortTuples(ts)
	for _, t := range ts {
		if s, r := stored[t], eventIDIn(v.state, t); s != r {
			diffs = append(diffs, fmt.Sprintf("%s stored %s, replayed %s", tupleString(t), orNone(s), orNone(r)))
		}
	}
	return strings.Join(diffs, "; ")
}

// checkMemberships compares the memberships projection with the member
// events of the replayed state.
func (v *verifier) checkMemberships(ctx context.Context) error {
	ms, err := v.store.RoomMemberships(ctx, v.nid)
	if err != nil {
		return v.unreadable(ctx, "", "memberships", err)
	}
	rows := map[string]persistence.Membership{}
	for _, m := range ms {
		rows[m.UserID] = m
	}
	var users []string
	for t := range v.state {
		if t.EventType == spec.MRoomMember {
			users = append(users, t.StateKey)
		}
	}
	sort.Strings(users)
	for _, user := range users {
		ev := v.state.Get(spec.MRoomMember, user)
		want, _ := ev.Membership()
		m, ok := rows[user]
		delete(rows, user)
		info := v.events[ev.EventID()]
		switch {
		case !ok:
			v.problem(ProblemMembership, ev.EventID(), "no membership row for %s (%s)", user, want)
		case m.Membership != want || m.EventID != ev.EventID() || m.StreamPos != info.pos:
			v.problem(ProblemMembership, ev.EventID(), "%s's row says %s by %s at %d, the state %s by %s at %d",
				user, m.Membership, m.EventID, m.StreamPos, want, ev.EventID(), info.pos)
		}
	}
	var extra []string
	for user := range rows {
		extra = append(extra, user)
	}
	sort.Strings(extra)
	for _, user := range extra {
		m := rows[user]
		v.problem(ProblemMembership, m.EventID, "a membership row for %s (%s) but no member event in the state", user, m.Membership)
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// snapshotState is a stored snapshot resolved to (type, state key) → event
// ID. Moving to the next snapshot reads only the blocks it adds when it
// extends the current one (as a state event's snapshot extends the one
// before it), so a replay costs one block read per state event and a full
// read only per compaction.
type snapshotState struct {
	snapshot persistence.StateSnapshotNID
	blocks   []persistence.StateBlockNID
	state    map[Tuple]string
}

// moveTo resolves snapshot, reporting malformed blocks against eventID,
// and returns the tuples whose entry may have changed.
func (s *snapshotState) moveTo(ctx context.Context, v *verifier, eventID string, snapshot persistence.StateSnapshotNID) ([]Tuple, error) {
	blocks, err := v.store.SnapshotBlocks(ctx, snapshot)
	if err != nil {
		if err := v.unreadable(ctx, eventID, fmt.Sprintf("snapshot %d", snapshot), err); err != nil {
			return nil, err
		}
		blocks = nil // compare the replay with an empty state: every tuple differs
	}
	if dup := repeated(blocks); dup != 0 {
		v.problem(ProblemSnapshot, eventID, "snapshot %d lists block %d twice: %v", snapshot, dup, blocks)
	}
	var changed []Tuple
	read := blocks
	if len(blocks) >= len(s.blocks) && slices.Equal(blocks[:len(s.blocks)], s.blocks) {
		read = blocks[len(s.blocks):]
	} else {
		for t := range s.state {
			changed = append(changed, t)
		}
		s.state = map[Tuple]string{}
	}
	s.snapshot, s.blocks = snapshot, blocks
	if len(read) == 0 {
		return changed, nil
	}
	entries, err := v.store.StateBlockEntries(ctx, read)
	if err != nil {
		return changed, v.unreadable(ctx, eventID, fmt.Sprintf("blocks %v of snapshot %d", read, snapshot), err)
	}
	byBlock := map[persistence.StateBlockNID][]persistence.StateBlockEntry{}
	for _, e := range entries {
		byBlock[e.Block] = append(byBlock[e.Block], e)
	}
	for _, b := range read {
		if len(byBlock[b]) == 0 {
			v.problem(ProblemSnapshot, eventID, "snapshot %d lists block %d, which has no entries", snapshot, b)
		}
		for _, e := range byBlock[b] {
			t := Tuple{EventType: e.Type, StateKey: e.StateKey}
			if e.EventID == "" {
				v.problem(ProblemSnapshot, eventID, "block %d has %s → event NID %d, which is not stored", b, tupleString(t), e.EventNID)
			} else if info, ok := v.events[e.EventID]; ok && (info.tuple == nil || *info.tuple != t) {
				v.problem(ProblemSnapshot, eventID, "block %d files %s under %s", b, e.EventID, tupleString(t))
			}
			s.state[t] = e.EventID
			changed = append(changed, t)
		}
	}
	return changed, nil
}

func repeated(blocks []persistence.StateBlockNID) persistence.StateBlockNID {
	seen := map[persistence.StateBlockNID]bool{}
	for _, b := range blocks {
		if seen[b] {
			return b
		}
		seen[b] = true
	}
	return 0
}
