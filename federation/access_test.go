package federation

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// roomsFake is a RoomEventReader of one room, !r:x, of version 10.
type roomsFake struct {
	RoomEventReader
	members    []persistence.Membership
	visibility string // "" for none
	acl        string // the ACL's content, "" for none
	fail       bool
}

func (f *roomsFake) RoomInfo(_ context.Context, roomID string) (persistence.RoomNID, string, error) {
	if roomID != "!r:x" {
		return 0, "", persistence.ErrNotFound
	}
	return 1, "10", nil
}

func (f *roomsFake) ServerJoined(_ context.Context, _ persistence.RoomNID, server string) (bool, error) {
	if f.fail {
		return false, errors.New("database gone")
	}
	for _, m := range f.members {
		if _, domain, _ := strings.Cut(m.UserID, ":"); m.Membership == "join" && domain == server {
			return true, nil
		}
	}
	return false, nil
}

func (f *roomsFake) CurrentStateEvent(_ context.Context, _ persistence.RoomNID, eventType, stateKey string) (*persistence.StoredEvent, error) {
	if eventType == "m.room.server_acl" && stateKey == "" && f.acl != "" {
		return &persistence.StoredEvent{EventID: "$acl", JSON: []byte(`{"type":"m.room.server_acl","state_key":"","content":` + f.acl + `}`)}, nil
	}
	if f.visibility == "" || eventType != "m.room.history_visibility" || stateKey != "" {
		return nil, persistence.ErrNotFound
	}
	return &persistence.StoredEvent{EventID: "$hv", JSON: []byte(`{"type":"m.room.history_visibility","state_key":"","content":{"history_visibility":"` + f.visibility + `"}}`)}, nil
}

func TestOpenRoomLetsInServersInTheRoomOrAnyoneWhenWorldReadable(t *testing.T) {
	joined := func(user string) persistence.Membership {
		return persistence.Membership{UserID: user, Membership: "join"}
	}
	left := func(user string) persistence.Membership {
		return persistence.Membership{UserID: user, Membership: "leave"}
	}
	for _, tc := range []struct {
		name       string
		room       string
		members    []persistence.Membership
		visibility string
		fail       bool
		status     int // 0: allowed
		acl        string
	}{
		{"a user of the origin is joined", "!r:x", []persistence.Membership{joined("@a:x"), joined("@b:127.0.0.1:1")}, "shared", false, 0, ""},
		{"world_readable, nobody of the origin", "!r:x", []persistence.Membership{joined("@a:x")}, "world_readable", false, 0, ""},
		{"the origin's user left", "!r:x", []persistence.Membership{joined("@a:x"), left("@b:127.0.0.1:1")}, "shared", false, http.StatusForbidden, ""},
		{"a server whose name extends the origin's", "!r:x", []persistence.Membership{joined("@b:127.0.0.1:10")}, "joined", false, http.StatusForbidden, ""},
		{"no history visibility at all", "!r:x", nil, "", false, http.StatusForbidden, ""},
		{"unknown room", "!nope:x", nil, "world_readable", false, http.StatusNotFound, ""},
		{"storage fails", "!r:x", nil, "world_readable", true, http.StatusInternalServerError, ""},
		{"joined but denied by the ACL", "!r:x", []persistence.Membership{joined("@b:127.0.0.1:1")}, "shared", false, http.StatusForbidden, `{"allow":["*"],"allow_ip_literals":false}`},
		{"world_readable but denied by the ACL", "!r:x", nil, "world_readable", false, http.StatusForbidden, `{"allow":["*"],"deny":["127.0.0.1"]}`},
		{"allowed by the ACL", "!r:x", nil, "world_readable", false, 0, `{"allow":["127.0.0.*"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(ServerOptions{Self: &Identity{ServerName: "x"}, RoomEvents: &roomsFake{members: tc.members, visibility: tc.visibility, acl: tc.acl, fail: tc.fail}})
			room, ferr := s.openRoom(context.Background(), "127.0.0.1:1", tc.room)
			switch {
			case tc.status == 0 && (ferr != nil || room == nil || room.nid != 1):
				t.Fatalf("refused: %v", ferr)
			case tc.status != 0 && (ferr == nil || ferr.status != tc.status):
				t.Fatalf("got %v, want status %d", ferr, tc.status)
			}
		})
	}
}
