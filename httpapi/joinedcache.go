package httpapi

import (
	"context"
	"slices"
	"sync"

	"github.com/soma-chat/soma/persistence"
)

// joinedCache keeps each room's joined members, sorted, with the room's
// state snapshot they were read at. Every state change (a membership
// among them) gives the room a new snapshot, written in the same
// transaction as the membership projection, so a cached list is current
// while the room's head names the same snapshot: one row read instead of
// the room's whole member list on each sync of each member.
type joinedCache struct {
	mu    sync.Mutex
	rooms map[persistence.RoomNID]joinedEntry
}

type joinedEntry struct {
	snapshot persistence.StateSnapshotNID
	users    []string // sorted; shared, never modified
}

// maxJoinedCacheRooms bounds the cache; past it, it starts over.
const maxJoinedCacheRooms = 1 << 14

// joinedMembers returns the room's joined members, sorted. The slice is
// shared: callers must not modify it.
func (s *Server) joinedMembers(ctx context.Context, m persistence.Membership) ([]string, error) {
	head, err := s.store.RoomHead(ctx, m.RoomID)
	if err != nil {
		return nil, err
	}
	c := &s.joined
	c.mu.Lock()
	e, ok := c.rooms[m.RoomNID]
	c.mu.Unlock()
	if ok && e.snapshot == head.Snapshot {
		return e.users, nil
	}
	members, err := s.store.RoomMemberships(ctx, m.RoomNID)
	if err != nil {
		return nil, err
	}
	users := make([]string, 0, len(members))
	for _, mm := range members {
		if mm.Membership == "join" {
			users = append(users, mm.UserID)
		}
	}
	slices.Sort(users)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rooms == nil || len(c.rooms) >= maxJoinedCacheRooms {
		c.rooms = map[persistence.RoomNID]joinedEntry{}
	}
	// The memberships may be newer than head (a commit in between): the
	// next call sees a new snapshot and reads them again.
	c.rooms[m.RoomNID] = joinedEntry{snapshot: head.Snapshot, users: users}
	return users, nil
}
