package federation

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/roomdirectory"
)

// Inbound room directory queries: this server's aliases and public room
// list, answered by roomdirectory as the Client-Server API answers them.

// GET /_matrix/federation/v1/query/directory?room_alias=: the room a local
// alias names and the servers joined to it (this one first).
func (s *Server) queryDirectory(w http.ResponseWriter, r *http.Request) {
	alias := r.URL.Query().Get("room_alias")
	if alias == "" {
		writeError(w, http.StatusBadRequest, "M_MISSING_PARAM", "room_alias is required")
		return
	}
	localpart, server, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !strings.HasPrefix(alias, "#") || !ok || localpart == "" || server == "" {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "room_alias is not a room alias")
		return
	}
	if spec.ServerName(server) != s.self.ServerName {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "The room alias is not on this server")
		return
	}
	roomID, servers, err := roomdirectory.ResolveAlias(r.Context(), s.directory, string(s.self.ServerName), alias)
	if errors.Is(err, persistence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Room alias not found")
		return
	}
	if err != nil {
		s.internalError(w, r, err, "resolving an alias failed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"room_id": roomID, "servers": servers})
}

// GET and POST /_matrix/federation/v1/publicRooms: a page of the local
// public room list (POST carries a filter).
func (s *Server) publicRooms(w http.ResponseWriter, r *http.Request) {
	var req roomdirectory.Request
	if r.Method == http.MethodPost {
		if !readJSONBody(w, r, &req) {
			return
		}
	} else {
		q := r.URL.Query()
		req.Since = q.Get("since")
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil {
				writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "limit must be an integer")
				return
			}
			req.Limit = &n
		}
		req.IncludeAllNetworks = q.Get("include_all_networks") == "true"
		req.ThirdPartyInstanceID = q.Get("third_party_instance_id")
	}
	resp, err := roomdirectory.PublicRooms(r.Context(), s.directory, req)
	if errors.Is(err, roomdirectory.ErrBadSince) {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "Invalid since token")
		return
	}
	if err != nil {
		s.internalError(w, r, err, "listing public rooms failed")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
