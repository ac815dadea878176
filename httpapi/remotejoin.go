package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
)

// RemoteJoiner joins local users to rooms on other servers
// (*federation.Joiner): through the first of servers that lets them, with
// content as the join's content. federation.ErrUnsupportedRoomVersion and
// federation.ErrJoinFailed say why it could not.
type RemoteJoiner interface {
	Join(ctx context.Context, roomID, userID string, content map[string]any, servers []spec.ServerName) (string, error)
}

// needsRemoteJoin reports whether joining roomID must go through another
// server: this one does not have the room, or none of its users is in it
// any more (its view of the room has stopped following it).
func (s *Server) needsRemoteJoin(ctx context.Context, roomID string) (bool, error) {
	if s.opts.RemoteJoiner == nil {
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
// the room ID and the alias.
func (s *Server) joinServers(r *http.Request, roomID, alias string) []spec.ServerName {
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
	for _, id := range []string{roomID, alias} {
		if _, domain, ok := strings.Cut(id, ":"); ok {
			add(domain)
		}
	}
	return out
}

// joinRemote joins the caller to a room through other servers.
func (s *Server) joinRemote(r *http.Request, roomID, alias, userID string, content map[string]any) (int, any, error) {
	servers := s.joinServers(r, roomID, alias)
	if len(servers) == 0 {
		return 0, nil, errNotFound("no server is known to be in the room")
	}
	_, err := s.opts.RemoteJoiner.Join(r.Context(), roomID, userID, content, servers)
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

func joinedNames(servers []spec.ServerName) string {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
