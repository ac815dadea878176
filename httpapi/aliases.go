package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/roomdirectory"
)

// Room aliases (#local:server_name → room ID). The mapping lives in the
// directory's table, written here; the room's m.room.canonical_alias is
// room state and goes through the room's actor like any other event.

// maxAliasBytes bounds a whole alias, as the spec's grammar does.
const maxAliasBytes = 255

// roomAliasParts splits and checks an alias: "#" localpart ":" server,
// the localpart free of NUL (':' ends it), at most 255 bytes.
func roomAliasParts(alias string) (localpart, server string, err error) {
	rest, ok := strings.CutPrefix(alias, "#")
	if ok {
		localpart, server, ok = strings.Cut(rest, ":")
	}
	if !ok || localpart == "" || server == "" || len(alias) > maxAliasBytes || strings.ContainsRune(alias, 0) {
		return "", "", errInvalidParam("Room alias invalid: " + strconv.Quote(alias))
	}
	return localpart, server, nil
}

// localAlias checks that an alias is well formed and on this server, as
// creating and deleting one require.
func (s *Server) localAlias(alias string) error {
	_, server, err := roomAliasParts(alias)
	if err != nil {
		return err
	}
	if server != s.opts.ServerName {
		return errInvalidParam("Room alias " + alias + " is not on this server (" + s.opts.ServerName + ")")
	}
	return nil
}

// resolveRoomAlias returns the room an alias names and servers that can
// help join it. A remote alias is asked of its server over federation;
// without federation it is not found.
func (s *Server) resolveRoomAlias(ctx context.Context, alias string) (string, []string, error) {
	_, server, err := roomAliasParts(alias)
	if err != nil {
		return "", nil, err
	}
	if server != s.opts.ServerName {
		return s.remoteRoomAlias(ctx, server, alias)
	}
	roomID, servers, err := roomdirectory.ResolveAlias(ctx, s.store, s.opts.ServerName, alias)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", nil, errNotFound("Room alias " + alias + " not found.")
	}
	if err != nil {
		return "", nil, err
	}
	return roomID, servers, nil
}

// remoteRoomAlias asks the alias's server (GET
// /_matrix/federation/v1/query/directory).
func (s *Server) remoteRoomAlias(ctx context.Context, server, alias string) (string, []string, error) {
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(server)); !ok {
		return "", nil, errInvalidParam("Room alias invalid: bad server name")
	}
	if s.opts.RemoteDirectory == nil {
		return "", nil, errNotFound("Room alias " + alias + " is on another server, and federation is off on this server")
	}
	roomID, servers, err := s.opts.RemoteDirectory.LookupRoomAlias(ctx, spec.ServerName(server), alias)
	if errors.Is(err, federation.ErrRemoteNotFound) {
		return "", nil, errNotFound("Room alias " + alias + " not found.")
	}
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("server_name", server).Msg("remote room alias query failed")
		return "", nil, matrixError(http.StatusBadGateway, "M_UNKNOWN", "Could not reach "+server)
	}
	return roomID, servers, nil
}

// getRoomAliasHandler: GET /directory/room/{roomAlias}. No token needed.
func (s *Server) getRoomAliasHandler(r *http.Request) (int, any, error) {
	alias, err := urlParam(r, "roomAlias")
	if err != nil {
		return 0, nil, err
	}
	roomID, servers, err := s.resolveRoomAlias(r.Context(), alias)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"room_id": roomID, "servers": servers}, nil
}

// putRoomAliasHandler: PUT /directory/room/{roomAlias} {room_id}, by a
// member of the room.
func (s *Server) putRoomAliasHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	alias, err := urlParam(r, "roomAlias")
	if err != nil {
		return 0, nil, err
	}
	var body struct {
		RoomID string `json:"room_id"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if err := s.localAlias(alias); err != nil {
		return 0, nil, err
	}
	if body.RoomID == "" {
		return 0, nil, errMissingParam("room_id is required")
	}
	m, err := s.currentMembership(r.Context(), body.RoomID, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	if m != "join" {
		return 0, nil, errForbidden("You must be joined to the room to give it an alias")
	}
	err = s.store.InsertRoomAlias(r.Context(), persistence.RoomAlias{Alias: alias, RoomID: body.RoomID, Creator: c.UserID, CreatedTS: time.Now().UnixMilli()})
	if errors.Is(err, persistence.ErrAliasExists) {
		return 0, nil, matrixError(http.StatusConflict, "M_UNKNOWN", "Room alias "+alias+" already exists.")
	}
	if err != nil {
		return 0, nil, err
	}
	logRoomID(r.Context(), body.RoomID)
	return http.StatusOK, struct{}{}, nil
}

// deleteRoomAliasHandler: DELETE /directory/room/{roomAlias}, by the
// alias's creator, a member who may send m.room.canonical_alias, or a
// server admin. An alias the canonical alias event names is taken out of
// it, as the deleting user; that failing (no power) does not stop the
// deletion, as the spec recommends.
func (s *Server) deleteRoomAliasHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	alias, err := urlParam(r, "roomAlias")
	if err != nil {
		return 0, nil, err
	}
	if err := s.localAlias(alias); err != nil {
		return 0, nil, err
	}
	a, err := s.store.RoomAlias(r.Context(), alias)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Room alias " + alias + " not found.")
	}
	if err != nil {
		return 0, nil, err
	}
	if a.Creator != c.UserID {
		ok, err := s.mayManageDirectory(r.Context(), a.RoomID, c)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			return 0, nil, errForbidden("You may not delete this alias: you did not create it and cannot change the room's canonical alias")
		}
	}
	if err := s.store.DeleteRoomAlias(r.Context(), alias); err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, err
	}
	logRoomID(r.Context(), a.RoomID)
	s.dropFromCanonicalAlias(r.Context(), a.RoomID, alias, c)
	return http.StatusOK, struct{}{}, nil
}

// dropFromCanonicalAlias removes alias from the room's canonical alias
// event, if it names it; failures are logged, not returned.
func (s *Server) dropFromCanonicalAlias(ctx context.Context, roomID, alias string, c *caller) {
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if err != nil {
		return
	}
	var content map[string]any
	if json.Unmarshal(s.currentContent(ctx, nid, spec.MRoomCanonicalAlias), &content) != nil || content == nil {
		return
	}
	changed := false
	if a, _ := content["alias"].(string); a == alias {
		delete(content, "alias")
		changed = true
	}
	if alts, ok := content["alt_aliases"].([]any); ok {
		kept := slices.DeleteFunc(slices.Clone(alts), func(v any) bool { return v == alias })
		if len(kept) != len(alts) {
			content["alt_aliases"] = kept
			changed = true
		}
	}
	if !changed {
		return
	}
	b, _ := json.Marshal(content)
	if _, err := s.sendState(ctx, roomID, c, spec.MRoomCanonicalAlias, b); err != nil {
		s.log.Info().Err(err).Str("room_id", roomID).Str("alias", alias).Msg("deleted alias left in the canonical alias event")
	}
}

// getRoomAliasesHandler: GET /rooms/{roomId}/aliases, for members, or
// anyone when the room's history is world readable.
func (s *Server) getRoomAliasesHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	a, err := s.accessFor(r.Context(), pathParam(r, "roomId"), c.UserID)
	if err != nil {
		return 0, nil, err
	}
	if a.current != "join" {
		ev, err := s.stateEventCurrent(r.Context(), a.nid, spec.MRoomHistoryVisibility, "")
		if err != nil {
			return 0, nil, err
		}
		if historyVisibilityOf(ev) != "world_readable" {
			return 0, nil, errForbidden("You are not a member of the room.")
		}
	}
	aliases, err := s.store.RoomAliases(r.Context(), a.roomID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"aliases": aliases}, nil
}

// checkCanonicalAlias refuses an m.room.canonical_alias content whose
// local aliases do not name the room (400 M_BAD_ALIAS), as the spec asks
// of servers; remote aliases cannot be checked without federation.
func (s *Server) checkCanonicalAlias(ctx context.Context, roomID string, body []byte) error {
	var content struct {
		Alias      *string  `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if json.Unmarshal(body, &content) != nil {
		return errBadJSON("m.room.canonical_alias: alias must be a string and alt_aliases a list of strings")
	}
	var all []string
	if content.Alias != nil {
		all = append(all, *content.Alias)
	}
	all = append(all, content.AltAliases...)
	for _, alias := range all {
		if alias == "" {
			continue // clients clear the alias this way
		}
		_, server, err := roomAliasParts(alias)
		if err != nil {
			return err
		}
		if server != s.opts.ServerName {
			continue // TODO(federation): check remote aliases too.
		}
		a, err := s.store.RoomAlias(ctx, alias)
		if errors.Is(err, persistence.ErrNotFound) || (err == nil && a.RoomID != roomID) {
			return matrixError(http.StatusBadRequest, "M_BAD_ALIAS", "Room alias "+alias+" does not point to this room")
		}
		if err != nil {
			return err
		}
	}
	return nil
}
