package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/roomdirectory"
)

// The room directory: aliases (aliases.go), whether a room is published,
// and the public room list read from the rooms' current state.

// directoryRoutes are the room and user directory endpoints.
func (s *Server) directoryRoutes(r chi.Router) {
	r.Get("/directory/room/{roomAlias}", s.serve(s.getRoomAliasHandler))
	r.Put("/directory/room/{roomAlias}", s.serve(s.authed(s.putRoomAliasHandler)))
	r.Delete("/directory/room/{roomAlias}", s.serve(s.authed(s.deleteRoomAliasHandler)))
	r.Get("/rooms/{roomId}/aliases", s.serve(s.authed(s.getRoomAliasesHandler)))
	r.Get("/directory/list/room/{roomId}", s.serve(s.getRoomVisibilityHandler))
	r.Put("/directory/list/room/{roomId}", s.serve(s.authed(s.putRoomVisibilityHandler)))
	r.Get("/publicRooms", s.serve(s.publicRoomsHandler))
	r.Post("/publicRooms", s.serve(s.authed(s.publicRoomsHandler)))
	r.Post("/user_directory/search", s.serve(s.authed(s.userDirectorySearchHandler)))
}

// knownRoom returns a room's NID, 404 M_NOT_FOUND for an unknown room.
func (s *Server) knownRoom(ctx context.Context, roomID string) (persistence.RoomNID, error) {
	if err := checkRoomID(roomID); err != nil {
		return 0, err
	}
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, errNotFound("Room not found")
	}
	return nid, err
}

// getRoomVisibilityHandler: GET /directory/list/room/{roomId}. No token.
func (s *Server) getRoomVisibilityHandler(r *http.Request) (int, any, error) {
	roomID := pathParam(r, "roomId")
	if _, err := s.knownRoom(r.Context(), roomID); err != nil {
		return 0, nil, err
	}
	v, err := s.store.RoomVisibility(r.Context(), roomID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"visibility": v}, nil
}

// putRoomVisibilityHandler: PUT /directory/list/room/{roomId}
// {visibility}, by a member who may send m.room.canonical_alias, or a
// server admin.
func (s *Server) putRoomVisibilityHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	roomID := pathParam(r, "roomId")
	var body struct {
		Visibility *string `json:"visibility"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	v := persistence.VisibilityPublic
	if body.Visibility != nil {
		v = *body.Visibility
	}
	if v != persistence.VisibilityPublic && v != persistence.VisibilityPrivate {
		return 0, nil, errInvalidParam("visibility must be public or private")
	}
	if _, err := s.knownRoom(r.Context(), roomID); err != nil {
		return 0, nil, err
	}
	ok, err := s.mayManageDirectory(r.Context(), roomID, c)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, errForbidden("You need the power to change the room's canonical alias to publish or unpublish it")
	}
	if err := s.store.SetRoomVisibility(r.Context(), roomID, v); err != nil {
		return 0, nil, err
	}
	logRoomID(r.Context(), roomID)
	return http.StatusOK, struct{}{}, nil
}

// mayManageDirectory: server admins, and members joined to the room whose
// power reaches what sending m.room.canonical_alias needs.
func (s *Server) mayManageDirectory(ctx context.Context, roomID string, c *caller) (bool, error) {
	acc, err := s.store.GetAccount(ctx, c.Localpart)
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return false, err
	}
	if err == nil && acc.IsAdmin && !acc.Deactivated {
		return true, nil
	}
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m, err := s.store.MembershipOf(ctx, nid, c.UserID)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && m.Membership != "join") {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.canSendState(ctx, nid, c.UserID, spec.MRoomCanonicalAlias)
}

// canSendState reads the current power levels: is the user's level at
// least the one a state event of this type needs? Without a power levels
// event, state_default is 0 (anyone may).
func (s *Server) canSendState(ctx context.Context, nid persistence.RoomNID, userID, eventType string) (bool, error) {
	ev, err := s.stateEventCurrent(ctx, nid, spec.MRoomPowerLevels, "")
	if err != nil || ev == nil {
		return err == nil, err
	}
	ce, err := toClientEvent(ev, false)
	if err != nil {
		return false, err
	}
	var pl struct {
		Users        map[string]json.RawMessage `json:"users"`
		UsersDefault json.RawMessage            `json:"users_default"`
		Events       map[string]json.RawMessage `json:"events"`
		StateDefault json.RawMessage            `json:"state_default"`
	}
	if json.Unmarshal(ce.Content, &pl) != nil {
		return false, nil
	}
	user := powerLevel(pl.UsersDefault, 0)
	if v, ok := pl.Users[userID]; ok {
		user = powerLevel(v, user)
	}
	need := powerLevel(pl.StateDefault, 50)
	if v, ok := pl.Events[eventType]; ok {
		need = powerLevel(v, need)
	}
	return user >= need, nil
}

// powerLevel reads a power level: an integer, or (older rooms) a string
// holding one; def otherwise.
func powerLevel(raw json.RawMessage, def int64) int64 {
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(str), 10, 64); err == nil {
			return n
		}
	}
	return def
}

// newRoomAlias checks /createRoom's room_alias_name: the full alias, ""
// without one; 400 M_ROOM_IN_USE when taken (the reservation in
// reserveRoomAlias decides races).
func (s *Server) newRoomAlias(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if strings.ContainsAny(name, ":#") || strings.TrimSpace(name) != name {
		return "", errInvalidParam("room_alias_name may not contain ':', '#' or surrounding spaces")
	}
	alias := "#" + name + ":" + s.opts.ServerName
	if err := s.localAlias(alias); err != nil {
		return "", err
	}
	if _, err := s.store.RoomAlias(ctx, alias); err == nil {
		return "", errRoomInUse(alias)
	} else if !errors.Is(err, persistence.ErrNotFound) {
		return "", err
	}
	return alias, nil
}

func errRoomInUse(alias string) error {
	return matrixError(http.StatusBadRequest, "M_ROOM_IN_USE", "Room alias "+alias+" is already taken")
}

// withCanonicalAlias adds the m.room.canonical_alias event to a new
// room's initial events, right after the power levels as the spec orders.
func withCanonicalAlias(events []*messages.EventContent, alias string) []*messages.EventContent {
	if alias == "" || len(events) == 0 {
		return events
	}
	at := len(events)
	for i, ev := range events {
		if ev.Type == spec.MRoomPowerLevels {
			at = i + 1
			break
		}
	}
	empty := ""
	b, _ := json.Marshal(map[string]string{"alias": alias})
	ev := &messages.EventContent{Sender: events[0].Sender, Type: spec.MRoomCanonicalAlias, StateKey: &empty, Content: b}
	// An initial_state canonical alias would come later and override ours.
	return append(events[:at:at], append([]*messages.EventContent{ev}, events[at:]...)...)
}

// reserveRoomAlias maps the alias to the room about to be created; the
// returned release undoes it when the creation fails.
func (s *Server) reserveRoomAlias(ctx context.Context, alias, roomID, creator string) (release func(), err error) {
	if alias == "" {
		return func() {}, nil
	}
	err = s.store.InsertRoomAlias(ctx, persistence.RoomAlias{Alias: alias, RoomID: roomID, Creator: creator, CreatedTS: time.Now().UnixMilli()})
	if errors.Is(err, persistence.ErrAliasExists) {
		return nil, errRoomInUse(alias)
	}
	if err != nil {
		return nil, err
	}
	return func() {
		if err := s.store.DeleteRoomAlias(context.WithoutCancel(ctx), alias); err != nil {
			s.log.Warn().Err(err).Str("alias", alias).Msg("alias of a room that was not created left behind")
		}
	}, nil
}

// publishNewRoom lists a new room created with visibility public.
func (s *Server) publishNewRoom(ctx context.Context, roomID, visibility string) error {
	if visibility != persistence.VisibilityPublic {
		return nil
	}
	return s.store.SetRoomVisibility(ctx, roomID, persistence.VisibilityPublic)
}

// Public room list (roomdirectory, shared with federation).

// publicRoomsHandler: GET and POST /publicRooms. GET needs no token. With
// ?server= naming another server, that server's list is asked over
// federation.
func (s *Server) publicRoomsHandler(r *http.Request) (int, any, error) {
	var req roomdirectory.Request
	if r.Method == http.MethodPost {
		if err := decodeJSON(r, &req); err != nil {
			return 0, nil, err
		}
	} else {
		q := r.URL.Query()
		req.Since = q.Get("since")
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil {
				return 0, nil, errInvalidParam("limit must be an integer")
			}
			req.Limit = &n
		}
		req.IncludeAllNetworks = q.Get("include_all_networks") == "true"
		req.ThirdPartyInstanceID = q.Get("third_party_instance_id")
	}
	if server := r.URL.Query().Get("server"); server != "" && server != s.opts.ServerName {
		return s.remotePublicRooms(r, server, req)
	}
	resp, err := roomdirectory.PublicRooms(r.Context(), s.store, req)
	if errors.Is(err, roomdirectory.ErrBadSince) {
		return 0, nil, errInvalidParam("invalid since token")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, resp, nil
}

// remotePublicRooms asks another server for its public room list.
func (s *Server) remotePublicRooms(r *http.Request, server string, req roomdirectory.Request) (int, any, error) {
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(server)); !ok {
		return 0, nil, errInvalidParam("server is not a server name")
	}
	if s.opts.RemoteDirectory == nil {
		return 0, nil, errNotFound("Cannot list the public rooms of " + server + ": federation is off on this server")
	}
	resp, err := s.opts.RemoteDirectory.PublicRooms(r.Context(), spec.ServerName(server), req)
	if errors.Is(err, federation.ErrRemoteNotFound) {
		return 0, nil, errNotFound("The server " + server + " has no public room list")
	}
	if err != nil {
		zerolog.Ctx(r.Context()).Warn().Err(err).Str("server_name", server).Msg("remote public rooms query failed")
		return 0, nil, matrixError(http.StatusBadGateway, "M_UNKNOWN", "Could not reach "+server)
	}
	return http.StatusOK, resp, nil
}
