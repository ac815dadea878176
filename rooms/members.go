package rooms

import (
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Members is the membership-derived index a room keeps in memory, updated
// per member event rather than recomputed from the state per event: who is
// joined, and which servers have joined members (the destinations of the
// room's events once it federates).
type Members struct {
	joined  map[string]struct{}
	servers map[string]int // server name → joined members there
}

func newMembers() *Members {
	return &Members{joined: map[string]struct{}{}, servers: map[string]int{}}
}

// update records that userID's membership is now membership.
func (m *Members) update(userID, membership string) {
	_, was := m.joined[userID]
	is := membership == spec.Join
	if was == is {
		return
	}
	server := serverOf(userID)
	if is {
		m.joined[userID] = struct{}{}
		m.servers[server]++
		return
	}
	delete(m.joined, userID)
	if m.servers[server]--; m.servers[server] <= 0 {
		delete(m.servers, server)
	}
}

// applyEvent updates the index for a state event.
func (m *Members) applyEvent(ev gomatrixserverlib.PDU) {
	if ev.Type() != spec.MRoomMember || ev.StateKey() == nil {
		return
	}
	membership, err := ev.Membership()
	if err != nil {
		return
	}
	m.update(*ev.StateKey(), membership)
}

// Joined returns how many users are joined.
func (m *Members) Joined() int { return len(m.joined) }

// IsJoined reports whether userID is joined.
func (m *Members) IsJoined(userID string) bool {
	_, ok := m.joined[userID]
	return ok
}

// Servers returns the servers with at least one joined member.
func (m *Members) Servers() []string {
	out := make([]string, 0, len(m.servers))
	for s := range m.servers {
		out = append(out, s)
	}
	return out
}

func serverOf(userID string) string {
	_, server, _ := strings.Cut(userID, ":")
	return server
}
