package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/soma-chat/soma/persistence"
)

// eventFetcher reads a room's stored events for the checks of one remote
// event, remembering what it read: states after events, auth chains, and
// state resolution between states.
type eventFetcher struct {
	ctx     context.Context
	store   persistence.RoomStore
	roomID  string
	version gomatrixserverlib.IRoomVersion
	cache   map[string]*fetched
	// resolved is told how long each state resolution took.
	resolved func(time.Duration)
}

// fetched is a stored event with where it stands.
type fetched struct {
	pdu         gomatrixserverlib.PDU
	outlier     bool
	stateBefore persistence.StateSnapshotNID
}

func (a *Actor) fetcher() *eventFetcher {
	return &eventFetcher{
		// Each storage read has its own bound (see get).
		ctx:   context.Background(),
		store: a.deps.Store, roomID: a.roomID, version: a.room.Version,
		cache:    map[string]*fetched{},
		resolved: a.stats.ObserveStateResolution, // a nil stats measures nothing
	}
}

// get returns a stored event of the room, or nil when it is not stored.
func (f *eventFetcher) get(id string) (*fetched, error) {
	if e, ok := f.cache[id]; ok {
		return e, nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, defaultStoreTimeout)
	defer cancel()
	se, err := f.store.EventByID(ctx, id)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if se.RoomID != f.roomID {
		return nil, nil // another room's event is no event of this one
	}
	pdu, err := f.version.NewEventFromTrustedJSONWithEventID(se.EventID, se.JSON, false)
	if err != nil {
		return nil, fmt.Errorf("stored event %s: %w", id, err)
	}
	e := &fetched{pdu: pdu, outlier: se.StreamPos < 0, stateBefore: se.StateBefore}
	f.cache[id] = e
	return e, nil
}

// events returns the stored ones of ids and names those missing.
func (f *eventFetcher) events(ids []string) (found []gomatrixserverlib.PDU, missing []string, err error) {
	for _, id := range ids {
		e, err := f.get(id)
		if err != nil {
			return nil, nil, err
		}
		if e == nil {
			missing = append(missing, id)
			continue
		}
		found = append(found, e.pdu)
	}
	return found, missing, nil
}

// statesAfter returns the state after each event; an event not stored, or
// stored without a state (an outlier), is missing.
func (f *eventFetcher) statesAfter(ids []string) (states []State, missing []string, err error) {
	for _, id := range ids {
		e, err := f.get(id)
		if err != nil {
			return nil, nil, err
		}
		if e == nil || e.outlier {
			missing = append(missing, id)
			continue
		}
		ctx, cancel := context.WithTimeout(f.ctx, defaultStoreTimeout)
		stored, err := f.store.SnapshotEvents(ctx, e.stateBefore)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("state before %s: %w", id, err)
		}
		s := make(State, len(stored)+1)
		for _, se := range stored {
			pdu, err := f.version.NewEventFromTrustedJSONWithEventID(se.EventID, se.JSON, false)
			if err != nil {
				return nil, nil, fmt.Errorf("stored event %s: %w", se.EventID, err)
			}
			s.apply(pdu)
		}
		s.apply(e.pdu)
		states = append(states, s)
	}
	return states, missing, nil
}

// resolve is the state the spec's state resolution makes of several
// states (version 2 for the room versions Soma supports).
func (f *eventFetcher) resolve(states []State) (State, error) {
	if len(states) == 1 {
		return states[0], nil
	}
	var all []gomatrixserverlib.PDU
	seen := map[string]bool{}
	conflicted := map[Tuple]bool{}
	for _, s := range states {
		for t, ev := range s {
			if first := states[0][t]; first == nil || first.EventID() != ev.EventID() {
				conflicted[t] = true
			}
			if !seen[ev.EventID()] {
				seen[ev.EventID()] = true
				all = append(all, ev)
			}
		}
	}
	for t := range states[0] {
		for _, s := range states[1:] {
			if s[t] == nil {
				conflicted[t] = true
			}
		}
	}
	if len(conflicted) == 0 {
		return states[0], nil
	}
	var chainOf []gomatrixserverlib.PDU
	for _, ev := range all {
		if sk := ev.StateKey(); sk != nil && conflicted[Tuple{EventType: ev.Type(), StateKey: *sk}] {
			chainOf = append(chainOf, ev)
		}
	}
	start := time.Now()
	defer func() { f.resolved(time.Since(start)) }()
	authChain, err := f.authChain(chainOf)
	if err != nil {
		return nil, err
	}
	resolved, err := gomatrixserverlib.ResolveConflicts(f.version.Version(), all, authChain, userIDForSender, func(string) bool { return false })
	if err != nil {
		return nil, fmt.Errorf("state resolution: %w", err)
	}
	// An empty answer means the resolver could not work (no create event
	// among the auth events): never store it as the room's state.
	if len(resolved) == 0 {
		return nil, errors.New("state resolution gave no state")
	}
	return stateFrom(resolved), nil
}

// authChain returns every stored event reachable from events' auth events.
func (f *eventFetcher) authChain(events []gomatrixserverlib.PDU) ([]gomatrixserverlib.PDU, error) {
	var chain []gomatrixserverlib.PDU
	seen := map[string]bool{}
	queue := []string{}
	for _, ev := range events {
		queue = append(queue, ev.AuthEventIDs()...)
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		e, err := f.get(id)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue // what the chain lacks, resolution does without
		}
		chain = append(chain, e.pdu)
		queue = append(queue, e.pdu.AuthEventIDs()...)
	}
	return chain, nil
}
