package federation

import (
	"errors"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/persistence"
)

// GET /_matrix/federation/v1/query/profile?user_id=&field=: a local
// user's public profile for another server.
func (s *Server) queryProfile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	userID := q.Get("user_id")
	if userID == "" {
		writeError(w, http.StatusBadRequest, "M_MISSING_PARAM", "user_id is required")
		return
	}
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "user_id is not a user ID")
		return
	}
	if uid.Domain() != s.self.ServerName {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "The user is not hosted on this server")
		return
	}
	field := q.Get("field")
	if field != "" && field != "displayname" && field != "avatar_url" {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", `field must be "displayname" or "avatar_url"`)
		return
	}
	p, err := s.profiles.GetProfile(r.Context(), uid.Local())
	if errors.Is(err, persistence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "User does not exist")
		return
	}
	if err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("reading a profile failed")
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Could not read the profile")
		return
	}
	body := map[string]string{}
	if p.DisplayName != "" && field != "avatar_url" {
		body["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" && field != "displayname" {
		body["avatar_url"] = p.AvatarURL
	}
	writeJSON(w, http.StatusOK, body)
}
