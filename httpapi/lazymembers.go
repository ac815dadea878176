package httpapi

import (
	"context"
	"errors"
	"sync"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// Lazy-loading room members: a /sync with lazy_load_members sends a room
// member event only when the device has not had it yet. What each device
// was sent is remembered in this node's memory (lost on restart, not
// shared between nodes: a device then gets some members again, which the
// spec allows); full_state and an initial sync reset it.

// maxLazyDevices bounds the devices remembered per server; past it the
// memory starts again (clients then get redundant members once).
const maxLazyDevices = 100000

type lazyDeviceKey struct{ userID, deviceID string }

// lazyMemberCache is device → room → member user ID → member event ID sent.
type lazyMemberCache struct {
	mu      sync.Mutex
	devices map[lazyDeviceKey]map[string]map[string]string
}

// lazyCaches holds one cache per Server (*Server → *lazyMemberCache), so
// that the cache needs no field in Server.
var lazyCaches sync.Map

func (s *Server) lazyMembers() *lazyMemberCache {
	if c, ok := lazyCaches.Load(s); ok {
		return c.(*lazyMemberCache)
	}
	c, _ := lazyCaches.LoadOrStore(s, &lazyMemberCache{devices: map[lazyDeviceKey]map[string]map[string]string{}})
	return c.(*lazyMemberCache)
}

// reset forgets what a device was sent.
func (c *lazyMemberCache) reset(userID, deviceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.devices, lazyDeviceKey{userID, deviceID})
}

// sent reports whether the device already has this member event.
func (c *lazyMemberCache) sent(userID, deviceID, roomID, member, eventID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.devices[lazyDeviceKey{userID, deviceID}][roomID][member] == eventID
}

// remember records member events sent to a device: member → event ID.
func (c *lazyMemberCache) remember(userID, deviceID, roomID string, members map[string]string) {
	if len(members) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := lazyDeviceKey{userID, deviceID}
	rooms := c.devices[k]
	if rooms == nil {
		if len(c.devices) >= maxLazyDevices {
			c.devices = map[lazyDeviceKey]map[string]map[string]string{}
		}
		rooms = map[string]map[string]string{}
		c.devices[k] = rooms
	}
	if rooms[roomID] == nil {
		rooms[roomID] = map[string]string{}
	}
	for m, id := range members {
		rooms[roomID][m] = id
	}
}

// lazyMembers reports whether the filter asks for lazy-loaded members.
func (f *syncFilter) lazyMembers() bool {
	return f.Room.State.LazyLoadMembers || f.Room.Timeline.LazyLoadMembers
}

// includeRedundant reports whether members already sent are sent again.
func (f *syncFilter) includeRedundant() bool {
	return f.Room.State.IncludeRedundantMembers || f.Room.Timeline.IncludeRedundantMembers
}

// lazyState trims a room section's state to the member events its
// timeline needs: those of the timeline's senders and the syncing user's
// own, as of the timeline's start. A full section sends them all; an
// incremental one only those this device has not had (unless
// include_redundant_members), reading them from the state at the
// timeline's start. What is sent, timeline member events included, is
// remembered for the device.
func (s *Server) lazyState(ctx context.Context, req *syncRequest, roomID string, state, evs, visible []persistence.StoredEvent, full bool) ([]persistence.StoredEvent, error) {
	needed := map[string]bool{req.userID: true}
	for i := range visible {
		needed[visible[i].Sender] = true
	}
	cache := s.lazyMembers()
	redundant := req.filter.includeRedundant()
	wanted := func(ev *persistence.StoredEvent) bool {
		return full || redundant || !cache.sent(req.userID, req.deviceID, roomID, *ev.StateKey, ev.EventID)
	}
	out := state[:0:0]
	have := map[string]bool{}
	for i := range state {
		ev := &state[i]
		if ev.Type != spec.MRoomMember {
			out = append(out, *ev)
			continue
		}
		if needed[*ev.StateKey] && wanted(ev) {
			out = append(out, *ev)
			have[*ev.StateKey] = true
		}
	}
	if !full && len(evs) > 0 && req.filter.Room.State.allows(spec.MRoomMember, "") {
		// An incremental section's state holds only changes: read the
		// needed members the device lacks from the timeline's start.
		for user := range needed {
			if have[user] || (user == req.userID && len(visible) == 0) {
				continue
			}
			ev, err := s.store.StateEventAt(ctx, evs[0].StateBefore, spec.MRoomMember, user)
			if errors.Is(err, persistence.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if req.filter.Room.State.allowsEvent(ev) && wanted(ev) {
				out = append(out, *ev)
			}
		}
	}
	sent := map[string]string{}
	for _, list := range [][]persistence.StoredEvent{out, visible} {
		for i := range list {
			if list[i].Type == spec.MRoomMember && list[i].StateKey != nil {
				sent[*list[i].StateKey] = list[i].EventID
			}
		}
	}
	cache.remember(req.userID, req.deviceID, roomID, sent)
	return out, nil
}
