package sqlstore

import (
	"context"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The read side of rooms, for the client API and sync.

// RoomInfo implements persistence.RoomReader.
func (s *Store) RoomInfo(ctx context.Context, roomID string) (persistence.RoomNID, string, error) {
	nid, version, err := s.rooms.SelectRoomInfo(ctx, nil, roomID)
	if err != nil {
		return 0, "", fmt.Errorf("persistence.RoomInfo: %w", notFoundIfNoRows(err))
	}
	return nid, version, nil
}

// EventByID implements persistence.RoomReader.
func (s *Store) EventByID(ctx context.Context, eventID string) (*persistence.StoredEvent, error) {
	ev, err := s.events.SelectEventByID(ctx, eventID)
	if err != nil {
		return nil, fmt.Errorf("persistence.EventByID: %w", notFoundIfNoRows(err))
	}
	return ev, nil
}

// RoomEvents implements persistence.RoomReader. A limit below 1 returns
// nothing.
func (s *Store) RoomEvents(ctx context.Context, room persistence.RoomNID, from, to persistence.StreamPos, limit int, forward bool) ([]persistence.StoredEvent, error) {
	if limit < 1 || from >= to {
		return nil, nil
	}
	evs, err := s.events.SelectRoomEvents(ctx, room, from, to, limit, forward)
	if err != nil {
		return nil, fmt.Errorf("persistence.RoomEvents: %w", err)
	}
	return evs, nil
}

// RoomsWithEvents implements persistence.RoomReader. The rooms come in NID
// order.
func (s *Store) RoomsWithEvents(ctx context.Context, rooms []persistence.RoomNID, from, to persistence.StreamPos) ([]persistence.RoomNID, error) {
	if len(rooms) == 0 || from >= to {
		return nil, nil
	}
	out, err := s.events.SelectRoomsWithEvents(ctx, rooms, from, to)
	if err != nil {
		return nil, fmt.Errorf("persistence.RoomsWithEvents: %w", err)
	}
	return out, nil
}

// EventsInRooms implements persistence.RoomReader.
func (s *Store) EventsInRooms(ctx context.Context, rooms []persistence.RoomNID, from, to persistence.StreamPos, limit int) ([]persistence.StoredEvent, error) {
	if limit < 1 || len(rooms) == 0 || from >= to {
		return nil, nil
	}
	evs, err := s.events.SelectEventsInRooms(ctx, rooms, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("persistence.EventsInRooms: %w", err)
	}
	return evs, nil
}

// CurrentState implements persistence.RoomReader. The events come in no
// particular order.
func (s *Store) CurrentState(ctx context.Context, room persistence.RoomNID) ([]persistence.StoredEvent, error) {
	evs, err := s.currentState.SelectCurrentState(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("persistence.CurrentState: %w", err)
	}
	return evs, nil
}

// CurrentStateEvent implements persistence.RoomReader.
func (s *Store) CurrentStateEvent(ctx context.Context, room persistence.RoomNID, eventType, stateKey string) (*persistence.StoredEvent, error) {
	ev, err := s.currentState.SelectCurrentStateEvent(ctx, room, eventType, stateKey)
	if err != nil {
		return nil, fmt.Errorf("persistence.CurrentStateEvent: %w", notFoundIfNoRows(err))
	}
	return ev, nil
}

// StateEventsBetween implements persistence.RoomReader.
func (s *Store) StateEventsBetween(ctx context.Context, room persistence.RoomNID, from, to persistence.StreamPos) ([]persistence.StoredEvent, error) {
	if from >= to {
		return nil, nil
	}
	evs, err := s.events.SelectStateEventsBetween(ctx, room, from, to)
	if err != nil {
		return nil, fmt.Errorf("persistence.StateEventsBetween: %w", err)
	}
	return evs, nil
}

// MembershipsForUser implements persistence.RoomReader.
func (s *Store) MembershipsForUser(ctx context.Context, userID string) ([]persistence.Membership, error) {
	ms, err := s.memberships.SelectMembershipsByUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("persistence.MembershipsForUser: %w", err)
	}
	return ms, nil
}

// JoinedServersOfRoom implements persistence.JoinedServers.
func (s *Store) JoinedServersOfRoom(ctx context.Context, roomID string) ([]string, error) {
	servers, err := s.memberships.SelectJoinedServersOfRoom(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("persistence.JoinedServersOfRoom: %w", err)
	}
	return servers, nil
}

// ServersSharingRoomsWith implements persistence.JoinedServers.
func (s *Store) ServersSharingRoomsWith(ctx context.Context, userID string) ([]string, error) {
	servers, err := s.memberships.SelectServersSharingRooms(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("persistence.ServersSharingRoomsWith: %w", err)
	}
	return servers, nil
}

// MembershipOf implements persistence.RoomReader.
func (s *Store) MembershipOf(ctx context.Context, room persistence.RoomNID, userID string) (*persistence.Membership, error) {
	m, err := s.memberships.SelectMembership(ctx, room, userID)
	if err != nil {
		return nil, fmt.Errorf("persistence.MembershipOf: %w", notFoundIfNoRows(err))
	}
	return m, nil
}

// JoinedMemberCount implements persistence.RoomReader.
func (s *Store) JoinedMemberCount(ctx context.Context, room persistence.RoomNID) (int, error) {
	var n int
	if err := s.memberships.countJoined.QueryRowContext(ctx, room).Scan(&n); err != nil {
		return 0, fmt.Errorf("persistence.JoinedMemberCount: %w", err)
	}
	return n, nil
}

// ServerJoined implements persistence.RoomReader.
func (s *Store) ServerJoined(ctx context.Context, room persistence.RoomNID, serverName string) (bool, error) {
	ok, err := s.memberships.SelectServerJoined(ctx, room, serverName)
	if err != nil {
		return false, fmt.Errorf("persistence.ServerJoined: %w", err)
	}
	return ok, nil
}

// ForgetRoom implements persistence.RoomReader: ErrNotFound when the user
// has no membership of the room. Whether the user may forget it (not while
// joined) is the caller's rule.
func (s *Store) ForgetRoom(ctx context.Context, room persistence.RoomNID, userID string) error {
	return s.updateOne(ctx, "persistence.ForgetRoom", s.memberships.updateForgotten, room, userID)
}
