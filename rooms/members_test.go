package rooms

import (
	"slices"
	"testing"
)

func TestMembersTracksJoinedUsersAndTheirServers(t *testing.T) {
	m := newMembers()
	m.update("@a:one", "join")
	m.update("@b:one", "join")
	m.update("@c:two", "invite")
	m.update("@c:two", "join")
	m.update("@a:one", "join") // repeated joins (profile changes) count once
	if m.Joined() != 3 {
		t.Fatalf("joined = %d, want 3", m.Joined())
	}
	servers := m.Servers()
	slices.Sort(servers)
	if !slices.Equal(servers, []string{"one", "two"}) {
		t.Fatalf("servers = %v", servers)
	}
	m.update("@c:two", "leave")
	m.update("@b:one", "ban")
	if m.Joined() != 1 || m.IsJoined("@b:one") || !m.IsJoined("@a:one") {
		t.Fatalf("after leave and ban: joined %d", m.Joined())
	}
	if s := m.Servers(); !slices.Equal(s, []string{"one"}) {
		t.Fatalf("servers = %v, want [one]", s)
	}
}
