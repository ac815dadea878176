package httpapi

import (
	"context"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/rooms"
)

// roomAccess is what a user may read of a room: events up to bound, seen
// through the history visibility rules.
type roomAccess struct {
	roomID  string
	nid     persistence.RoomNID
	userID  string
	current string // the user's membership now ("" if none)
	// departure is the user's leave or ban, when that is their membership.
	departure *persistence.StoredEvent
	bound     persistence.StreamPos
	// joinedLater: joined now, or joined when they last left.
	joinedLater bool
}

var errNotInRoom = errForbidden("you are not, and were not, a member of this room")

// accessFor works out a user's access to a room. Unknown rooms and rooms
// the user never belonged to (and cannot peek) are M_FORBIDDEN alike, so
// that room existence does not leak.
func (s *Server) accessFor(ctx context.Context, roomID, userID string) (*roomAccess, error) {
	if err := checkRoomID(roomID); err != nil {
		return nil, err
	}
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, errNotInRoom
	}
	if err != nil {
		return nil, err
	}
	max, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	a := &roomAccess{roomID: roomID, nid: nid, userID: userID, bound: max}
	m, err := s.store.MembershipOf(ctx, nid, userID)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		a.current = m.Membership
	}
	switch a.current {
	case "join":
		a.joinedLater = true
	case "leave", "ban":
		dep, err := s.store.EventByID(ctx, m.EventID)
		if err != nil {
			return nil, err
		}
		a.departure, a.bound = dep, dep.StreamPos
		before, err := s.stateEventAt(ctx, dep.StateBefore, spec.MRoomMember, userID)
		if err != nil {
			return nil, err
		}
		a.joinedLater = membershipOf(before) == "join"
	}
	return a, nil
}

// canReadState: members (and those who left, as of their departure) can
// read state; others only of world-readable rooms.
func (s *Server) canReadState(ctx context.Context, a *roomAccess) (bool, error) {
	if a.current == "join" || a.departure != nil {
		return true, nil
	}
	ev, err := s.stateEventCurrent(ctx, a.nid, spec.MRoomHistoryVisibility, "")
	if err != nil {
		return false, err
	}
	return historyVisibilityOf(ev) == "world_readable", nil
}

// stateFor returns the state the user may see: the current state, or the
// state as of their departure.
func (s *Server) stateFor(ctx context.Context, a *roomAccess) ([]persistence.StoredEvent, error) {
	if ok, err := s.canReadState(ctx, a); err != nil || !ok {
		if err == nil {
			err = errNotInRoom
		}
		return nil, err
	}
	if a.departure == nil {
		return s.store.CurrentState(ctx, a.nid)
	}
	state, err := s.store.SnapshotEvents(ctx, a.departure.StateBefore)
	if err != nil {
		return nil, err
	}
	return overrideState(state, *a.departure), nil
}

// overrideState replaces the (type, state key) of ev in state with ev.
func overrideState(state []persistence.StoredEvent, ev persistence.StoredEvent) []persistence.StoredEvent {
	out := state[:0:0]
	for _, se := range state {
		if se.Type == ev.Type && se.StateKey != nil && ev.StateKey != nil && *se.StateKey == *ev.StateKey {
			continue
		}
		out = append(out, se)
	}
	return append(out, ev)
}

// visibilityChecker decides event by event, caching state lookups per
// snapshot: a page of messages mostly shares a few snapshots.
type visibilityChecker struct {
	s      *Server
	a      *roomAccess
	vis    map[persistence.StateSnapshotNID]string
	member map[persistence.StateSnapshotNID]string
	// origin is the state before the room's first timeline event here,
	// which outliers (events stored without a state, e.g. history
	// backfilled from before this server joined) are seen through; -1
	// until read.
	origin persistence.StateSnapshotNID
}

func (s *Server) newVisibilityChecker(a *roomAccess) *visibilityChecker {
	return &visibilityChecker{s: s, a: a, vis: map[persistence.StateSnapshotNID]string{}, member: map[persistence.StateSnapshotNID]string{}, origin: -1}
}

func (v *visibilityChecker) canSee(ctx context.Context, ev *persistence.StoredEvent) (bool, error) {
	snap := ev.StateBefore
	outlier := ev.StreamPos <= 0
	if outlier {
		// Its own state is unknown here: the room's history visibility
		// as this server first knew it decides, and the user's
		// membership then is taken as none (only their own membership
		// events say otherwise), the strictest reading.
		var err error
		if snap, err = v.originState(ctx); err != nil {
			return false, err
		}
	}
	vis, ok := v.vis[snap]
	if !ok {
		hv, err := v.s.stateEventAt(ctx, snap, spec.MRoomHistoryVisibility, "")
		if err != nil {
			return false, err
		}
		vis = historyVisibilityOf(hv)
		v.vis[snap] = vis
	}
	var at string
	if outlier && !(ev.Type == spec.MRoomMember && ev.StateKey != nil && *ev.StateKey == v.a.userID) {
		return rooms.CanSeeEvent(vis, "", v.a.joinedLater), nil
	}
	if ev.Type == spec.MRoomMember && ev.StateKey != nil && *ev.StateKey == v.a.userID {
		ce, err := toClientEvent(ev, false)
		if err != nil {
			return false, err
		}
		at = membershipFromContent(ce.Content)
	} else if m, ok := v.member[ev.StateBefore]; ok {
		at = m
	} else {
		me, err := v.s.stateEventAt(ctx, ev.StateBefore, spec.MRoomMember, v.a.userID)
		if err != nil {
			return false, err
		}
		at = membershipOf(me)
		v.member[ev.StateBefore] = at
	}
	return rooms.CanSeeEvent(vis, at, v.a.joinedLater), nil
}

// outliersVisible reports whether the caller may see outliers other than
// their own membership events (see canSee): when not, a history walk
// would find nothing to show.
func (v *visibilityChecker) outliersVisible(ctx context.Context) (bool, error) {
	snap, err := v.originState(ctx)
	if err != nil {
		return false, err
	}
	hv, err := v.s.stateEventAt(ctx, snap, spec.MRoomHistoryVisibility, "")
	if err != nil {
		return false, err
	}
	return rooms.CanSeeEvent(historyVisibilityOf(hv), "", v.a.joinedLater), nil
}

// stateAt is the state snapshot before ev, or for an outlier (which has
// none) the state before the room's first timeline event, the earliest
// this server knows.
func (v *visibilityChecker) stateAt(ctx context.Context, ev *persistence.StoredEvent) (persistence.StateSnapshotNID, error) {
	if ev.StreamPos > 0 {
		return ev.StateBefore, nil
	}
	return v.originState(ctx)
}

// originState is the state before the room's first timeline event.
func (v *visibilityChecker) originState(ctx context.Context) (persistence.StateSnapshotNID, error) {
	if v.origin < 0 {
		first, err := v.s.store.RoomEvents(ctx, v.a.nid, 0, v.a.bound, 1, true)
		if err != nil {
			return 0, err
		}
		v.origin = 0
		if len(first) == 1 {
			v.origin = first[0].StateBefore
		}
	}
	return v.origin, nil
}

// stateEventAt is StateEventAt with "not found" as nil.
func (s *Server) stateEventAt(ctx context.Context, snap persistence.StateSnapshotNID, typ, key string) (*persistence.StoredEvent, error) {
	if snap == 0 {
		return nil, nil
	}
	ev, err := s.store.StateEventAt(ctx, snap, typ, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return ev, err
}

// stateEventCurrent is CurrentStateEvent with "not found" as nil.
func (s *Server) stateEventCurrent(ctx context.Context, nid persistence.RoomNID, typ, key string) (*persistence.StoredEvent, error) {
	ev, err := s.store.CurrentStateEvent(ctx, nid, typ, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return ev, err
}
