package rooms

import (
	"errors"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Events from other servers. Federation has checked their signatures; the
// room checks the rest, in the spec's order: the content hash (a mismatch
// redacts the event), authorisation against the event's own auth events,
// then against the state before it (its prev events' states, resolved when
// they differ), then against the current state, where failing only
// soft-fails it: stored, never shown or built upon. An accepted event
// joins the forward extremities, and when others remain the current state
// is their states resolved.
//
// Events the room lacks are not fetched here (a room actor does not wait
// on the network): the reply names them, and federation inputs them and
// tries again.

// input handles one InputEvents command, committing each accepted event
// on its own.
func (a *Actor) input(msg *messages.InputEvents) *messages.InputEventsReply {
	relayFrom := "" // a server to leave out, or none when not relaying
	if msg.Relay {
		relayFrom = msg.Origin
	}
	if a.moved {
		return &messages.InputEventsReply{Error: errRoomMoved.Proto()}
	}
	if e := a.ensureLoaded(); e != nil {
		return &messages.InputEventsReply{Error: e.Proto()}
	}
	if !a.room.Exists() {
		return &messages.InputEventsReply{Error: notFound("this server is not in the room").Proto()}
	}
	reply := &messages.InputEventsReply{}
	for _, in := range msg.Events {
		res, pos, e := a.inputOne(in, msg.Relay, relayFrom)
		if e != nil {
			reply.Error = e.Proto()
			return reply
		}
		reply.Results = append(reply.Results, res)
		reply.StreamPos = max(reply.StreamPos, pos)
	}
	return reply
}

// inputOne checks and stores one remote event. An error is the room's own
// failure (storage); a refusal of the event is a result.
func (a *Actor) inputOne(in *messages.InputEvent, relay bool, origin string) (*messages.InputResult, int64, *Error) {
	r := a.room
	ev, err := r.Version.NewEventFromUntrustedJSON(in.Json)
	if err != nil {
		return &messages.InputResult{Rejected: fmt.Sprintf("malformed event: %s", err)}, 0, nil
	}
	res := &messages.InputResult{EventId: ev.EventID()}
	if ev.RoomID().String() != a.roomID {
		res.Rejected = "the event is for another room"
		return res, 0, nil
	}
	if len(ev.JSON()) > MaxPDUBytes {
		res.Rejected = "the event is too large"
		return res, 0, nil
	}
	stored, e := a.storedAs(ev.EventID(), res)
	if e != nil || stored == storedInTimeline || stored == storedRejected || (stored == storedOutlier && in.Outlier) {
		return res, 0, e
	}
	f := a.fetcher()
	authEvents, missing, err := f.events(ev.AuthEventIDs())
	if err != nil {
		return nil, 0, a.storeFailed(err)
	}
	if len(missing) > 0 {
		res.MissingAuth = missing
		return res, 0, nil
	}
	provider, err := gomatrixserverlib.NewAuthEvents(authEvents)
	if err != nil {
		return a.reject(ev, res, fmt.Sprintf("bad auth events: %s", err))
	}
	if err := gomatrixserverlib.Allowed(ev, provider, userIDForSender); err != nil {
		return a.reject(ev, res, fmt.Sprintf("not allowed by its auth events: %s", err))
	}
	if in.Outlier {
		return a.storeOutlier(ev, res)
	}

	var before State
	switch {
	case in.HasState:
		states, missing, err := f.events(in.StateIds)
		if err != nil {
			return nil, 0, a.storeFailed(err)
		}
		if len(missing) > 0 {
			res.MissingAuth = missing
			return res, 0, nil
		}
		before = stateFrom(states)
	case sameSet(ev.PrevEventIDs(), r.Extremities):
		before = r.State
	default:
		states, missing, err := f.statesAfter(ev.PrevEventIDs())
		if err != nil {
			return nil, 0, a.storeFailed(err)
		}
		if len(missing) > 0 {
			res.MissingPrev = missing
			return res, 0, nil
		}
		if before, err = f.resolve(states); err != nil {
			return nil, 0, a.storeFailed(err)
		}
	}
	if err := gomatrixserverlib.Allowed(ev, before, userIDForSender); err != nil {
		return a.reject(ev, res, fmt.Sprintf("not allowed by the state before it: %s", err))
	}
	if err := gomatrixserverlib.Allowed(ev, r.State, userIDForSender); err != nil {
		a.log.Info().Str("event_id", ev.EventID()).Err(err).Msg("soft-failed a remote event: the current state does not allow it")
		res.SoftFailed = true
		if stored == storedOutlier {
			return res, 0, nil
		}
		return a.storeOutlier(ev, res)
	}
	var dests []string
	if relay {
		dests = a.destinations(ev, origin)
	}
	return a.accept(ev, before, res, f, dests, stored == storedOutlier)
}

// How an event is stored already.
type storedKind int

const (
	storedNot        storedKind = iota
	storedOutlier               // outside the timeline: may join it (promoted)
	storedInTimeline            // nothing more to do
	storedRejected              // refused before: res says why
)

// storedAs says how the room has an event already.
func (a *Actor) storedAs(eventID string, res *messages.InputResult) (storedKind, *Error) {
	ctx, cancel := a.storeContext()
	defer cancel()
	if se, err := a.deps.Store.EventByID(ctx, eventID); err == nil {
		if se.StreamPos < 0 {
			return storedOutlier, nil
		}
		return storedInTimeline, nil
	} else if !errors.Is(err, persistence.ErrNotFound) {
		return storedNot, a.storeFailed(err)
	}
	reason, err := a.deps.Store.RejectedReason(ctx, eventID)
	switch {
	case err == nil:
		res.Rejected = reason
		return storedRejected, nil
	case errors.Is(err, persistence.ErrNotFound):
		return storedNot, nil
	default:
		return storedNot, a.storeFailed(err)
	}
}

// accept makes ev, allowed by before, part of the room's history (an
// outlier stored before joins it: promote), and queues it for dests.
func (a *Actor) accept(ev gomatrixserverlib.PDU, before State, res *messages.InputResult, f *eventFetcher, dests []string, promote bool) (*messages.InputResult, int64, *Error) {
	r := a.room
	after := before.clone()
	after.apply(ev)
	extremities := []string{ev.EventID()}
	for _, id := range r.Extremities {
		if !slices.Contains(ev.PrevEventIDs(), id) {
			extremities = append(extremities, id)
		}
	}
	current := after
	if len(extremities) > 1 {
		states, missing, err := f.statesAfter(extremities[1:])
		if err == nil && len(missing) > 0 {
			err = fmt.Errorf("forward extremities %v have no state", missing)
		}
		if err == nil {
			current, err = f.resolve(append(states, after))
		}
		if err != nil {
			return nil, 0, a.storeFailed(err)
		}
	}

	record := newEventRecord(ev, nil)
	record.Destinations, record.Promote = dests, promote
	if record.Redacts != "" {
		applies, err := a.appliesRemoteRedaction(ev, record.Redacts, before)
		if err != nil {
			return nil, 0, a.storeFailed(err)
		}
		if !applies {
			record.Redacts = "" // stored, shown, but redacting nothing
		}
	}
	// The usual case, an event on the room's head, advances the stored
	// state by itself; anything else names its state whole.
	onHead := sameState(before, r.State)
	if !onHead {
		record.StateBefore = before.refs()
	}
	req := persistence.CommitRequest{Events: []persistence.NewEvent{record}}
	if !sameState(current, after) {
		req.StateAfter = current.refs()
	}
	next := *r
	next.State, next.Extremities, next.Depth = current, extremities, max(r.Depth, ev.Depth())
	if onHead && req.StateAfter == nil {
		next.Members = r.Members
		next.Members.applyEvent(ev)
	} else {
		next.Members = membersOf(current)
	}
	out, e := a.commitRequest(&next, req)
	if e != nil {
		return nil, 0, e
	}
	return res, int64(out.LastStream), nil
}

// storeOutlier stores ev outside the timeline.
func (a *Actor) storeOutlier(ev gomatrixserverlib.PDU, res *messages.InputResult) (*messages.InputResult, int64, *Error) {
	record := newEventRecord(ev, nil)
	record.Outlier, record.Membership, record.Redacts = true, "", ""
	next := *a.room
	if _, e := a.commitRequest(&next, persistence.CommitRequest{Events: []persistence.NewEvent{record}}); e != nil {
		return nil, 0, e
	}
	return res, 0, nil
}

// reject records that the room refused ev.
func (a *Actor) reject(ev gomatrixserverlib.PDU, res *messages.InputResult, reason string) (*messages.InputResult, int64, *Error) {
	a.log.Info().Str("event_id", ev.EventID()).Str("reason", reason).Msg("rejected a remote event")
	res.Rejected = reason
	next := *a.room
	req := persistence.CommitRequest{Rejected: []persistence.Rejection{{EventID: ev.EventID(), Reason: reason}}}
	if _, e := a.commitRequest(&next, req); e != nil {
		return nil, 0, e
	}
	return res, 0, nil
}

func (a *Actor) storeFailed(err error) *Error {
	a.log.Error().Err(err).Msg("reading stored events for a remote event")
	return unavailable("the room could not read its events; retry")
}

// sameState reports whether two states name the same events.
func sameState(a, b State) bool {
	if len(a) != len(b) {
		return false
	}
	for t, ev := range a {
		if other, ok := b[t]; !ok || other.EventID() != ev.EventID() {
			return false
		}
	}
	return true
}

func stateFrom(events []gomatrixserverlib.PDU) State {
	s := make(State, len(events))
	for _, ev := range events {
		s.apply(ev)
	}
	return s
}

func (s State) clone() State {
	c := make(State, len(s)+1)
	for t, ev := range s {
		c[t] = ev
	}
	return c
}

// apply makes a state event the state for its tuple.
func (s State) apply(ev gomatrixserverlib.PDU) {
	if sk := ev.StateKey(); sk != nil {
		s[Tuple{EventType: ev.Type(), StateKey: *sk}] = ev
	}
}

// refs names the state whole, for storage.
func (s State) refs() []persistence.StateRef {
	refs := make([]persistence.StateRef, 0, len(s))
	for t, ev := range s {
		ref := persistence.StateRef{Type: t.EventType, StateKey: t.StateKey, EventID: ev.EventID()}
		if t.EventType == spec.MRoomMember {
			ref.Membership, _ = ev.Membership()
		}
		refs = append(refs, ref)
	}
	return refs
}

func membersOf(s State) *Members {
	m := newMembers()
	for _, ev := range s {
		m.applyEvent(ev)
	}
	return m
}
