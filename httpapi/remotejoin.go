package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
)

// RemoteMemberships changes memberships across servers
// (*federation.Memberships): Join joins a local user to a room on other
// servers through the first of servers that lets them, with content as
// the join's content (federation.ErrUnsupportedRoomVersion and
// federation.ErrJoinFailed say why it could not); Leave rejects a local
// user's invite to a room this server is not in; Invite invites a remote
// user into a room here, with the invitee's server's countersignature
// (federation.ErrInviteRefused, or a *federation.RoomError for the room's
// own refusal).
type RemoteMemberships interface {
	Join(ctx context.Context, roomID, userID string, content map[string]any, servers []spec.ServerName) (string, error)
	Leave(ctx context.Context, roomID, userID string, servers []spec.ServerName) (string, error)
	Invite(ctx context.Context, roomID string, content *messages.EventContent) (string, error)
}

// notResident reports whether a membership change in roomID must go
// through another server: this one does not have the room, or none of its
// users is in it (it has a stub, or its view stopped following the room).
func (s *Server) notResident(ctx context.Context, roomID string) (bool, error) {
	if s.opts.RemoteMemberships == nil {
		return false, nil
	}
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	members, err := s.store.RoomMemberships(ctx, nid)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m.Membership == "join" && strings.HasSuffix(m.UserID, ":"+s.opts.ServerName) {
			return false, nil
		}
	}
	// A room created here always has a resident: this server.
	return !strings.HasSuffix(roomID, ":"+s.opts.ServerName), nil
}

// joinServers are the servers to try a remote join through: those the
// client named (server_name, or via from newer clients), then the one in
// the room ID, then those an alias's server named.
func (s *Server) joinServers(r *http.Request, roomID string, aliasServers []string) []spec.ServerName {
	var out []spec.ServerName
	seen := map[spec.ServerName]bool{spec.ServerName(s.opts.ServerName): true}
	add := func(name string) {
		sn := spec.ServerName(name)
		if _, _, ok := spec.ParseAndValidateServerName(sn); ok && !seen[sn] {
			seen[sn] = true
			out = append(out, sn)
		}
	}
	q := r.URL.Query()
	for _, name := range append(q["server_name"], q["via"]...) {
		add(name)
	}
	if _, domain, ok := strings.Cut(roomID, ":"); ok {
		add(domain)
	}
	for _, name := range aliasServers {
		add(name)
	}
	return out
}

// joinRemote joins the caller to a room through other servers.
func (s *Server) joinRemote(r *http.Request, roomID string, aliasServers []string, userID string, content map[string]any) (int, any, error) {
	servers := s.joinServers(r, roomID, aliasServers)
	if len(servers) == 0 {
		return 0, nil, errNotFound("no server is known to be in the room")
	}
	_, err := s.opts.RemoteMemberships.Join(r.Context(), roomID, userID, content, servers)
	switch {
	case err == nil:
		return http.StatusOK, map[string]string{"room_id": roomID}, nil
	case errors.Is(err, federation.ErrUnsupportedRoomVersion):
		return 0, nil, &MatrixError{Status: http.StatusBadRequest, ErrCode: "M_UNSUPPORTED_ROOM_VERSION", Err: err.Error()}
	case errors.Is(err, federation.ErrJoinFailed):
		s.log.Info().Err(err).Str("room_id", roomID).Msg("remote join failed")
		return 0, nil, errForbidden("could not join the room through " + joinedNames(servers))
	default:
		return 0, nil, err
	}
}

// leaveRemote rejects the caller's invite to a room this server is not in,
// through the inviter's server or those of the room ID and the request.
func (s *Server) leaveRemote(r *http.Request, roomID, userID string) (int, any, error) {
	servers := s.joinServers(r, roomID, nil)
	if nid, _, err := s.store.RoomInfo(r.Context(), roomID); err == nil {
		if m, err := s.store.MembershipOf(r.Context(), nid, userID); err == nil {
			if ev, err := s.store.EventByID(r.Context(), m.EventID); err == nil {
				if _, server, ok := strings.Cut(ev.Sender, ":"); ok && server != s.opts.ServerName {
					servers = append([]spec.ServerName{spec.ServerName(server)}, servers...)
				}
			}
		}
	}
	if len(servers) == 0 {
		return 0, nil, errNotFound("no server is known to be in the room")
	}
	if _, err := s.opts.RemoteMemberships.Leave(r.Context(), roomID, userID, servers); err != nil {
		s.log.Info().Err(err).Str("room_id", roomID).Msg("remote leave failed")
		return 0, nil, errForbidden("could not leave the room through " + joinedNames(servers))
	}
	return http.StatusOK, struct{}{}, nil
}

// inviteRemote invites a user of another server into a room here.
func (s *Server) inviteRemote(r *http.Request, roomID string, content *messages.EventContent) (int, any, error) {
	_, err := s.opts.RemoteMemberships.Invite(r.Context(), roomID, content)
	var roomErr *federation.RoomError
	switch {
	case err == nil:
		return http.StatusOK, struct{}{}, nil
	case errors.As(err, &roomErr) && roomErr.Err != nil:
		return 0, nil, replyError(roomErr.Err)
	case errors.Is(err, federation.ErrInviteRefused):
		s.log.Info().Err(err).Str("room_id", roomID).Msg("remote invite refused")
		return 0, nil, errForbidden("the invitee's server refused the invite")
	default:
		return 0, nil, err
	}
}

func joinedNames(servers []spec.ServerName) string {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
