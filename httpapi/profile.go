package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
)

// Limits on profile fields, as Synapse sets them.
const (
	maxDisplayNameLength = 256  // characters
	maxAvatarURLLength   = 1000 // bytes
)

const (
	profileDisplayName = "displayname"
	profileAvatarURL   = "avatar_url"
)

// profileOwner reads the {userId} path parameter and returns its localpart
// and server name, and whether the user is local.
func (s *Server) profileOwner(r *http.Request) (localpart, server string, local bool, err error) {
	userID, err := urlParam(r, "userId")
	if err != nil {
		return "", "", false, err
	}
	rest, ok := strings.CutPrefix(userID, "@")
	lp, server, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || lp == "" || server == "" {
		return "", "", false, errInvalidParam("malformed user ID")
	}
	return lp, server, server == s.opts.ServerName, nil
}

// loadProfile returns the profile of the path's user (field "" for all of
// it): 404 for unknown users. A remote user's profile is asked of their
// server over federation; without federation it is not found.
func (s *Server) loadProfile(r *http.Request, field string) (persistence.Profile, error) {
	lp, server, local, err := s.profileOwner(r)
	if err != nil {
		return persistence.Profile{}, err
	}
	if !local {
		return s.remoteProfile(r, server, field)
	}
	p, err := s.store.GetProfile(r.Context(), lp)
	if errors.Is(err, persistence.ErrNotFound) {
		return persistence.Profile{}, errNotFound("Profile not found")
	}
	return p, err
}

// remoteProfile asks the user's server (GET /_matrix/federation/v1/query/profile).
func (s *Server) remoteProfile(r *http.Request, server, field string) (persistence.Profile, error) {
	if s.opts.RemoteProfiles == nil {
		return persistence.Profile{}, errNotFound("Profile not found (federation is off on this server)")
	}
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(server)); !ok {
		return persistence.Profile{}, errInvalidParam("malformed user ID: bad server name")
	}
	userID, _ := urlParam(r, "userId")
	p, err := s.opts.RemoteProfiles.LookupProfile(r.Context(), spec.ServerName(server), userID, field)
	if errors.Is(err, federation.ErrRemoteNotFound) {
		return persistence.Profile{}, errNotFound("Profile not found")
	}
	if err != nil {
		zerolog.Ctx(r.Context()).Warn().Err(err).Str("server_name", server).Msg("remote profile query failed")
		return persistence.Profile{}, matrixError(http.StatusBadGateway, "M_UNKNOWN", "Could not reach the user's server")
	}
	return persistence.Profile{DisplayName: p.DisplayName, AvatarURL: p.AvatarURL}, nil
}

// getProfile implements GET /profile/{userId}: unset fields are absent.
func (s *Server) getProfile(r *http.Request) (int, any, error) {
	p, err := s.loadProfile(r, "")
	if err != nil {
		return 0, nil, err
	}
	body := map[string]string{}
	if p.DisplayName != "" {
		body[profileDisplayName] = p.DisplayName
	}
	if p.AvatarURL != "" {
		body[profileAvatarURL] = p.AvatarURL
	}
	return http.StatusOK, body, nil
}

func (s *Server) getDisplayName(r *http.Request) (int, any, error) {
	p, err := s.loadProfile(r, profileDisplayName)
	if err != nil {
		return 0, nil, err
	}
	return profileField(profileDisplayName, p.DisplayName)
}

func (s *Server) getAvatarURL(r *http.Request) (int, any, error) {
	p, err := s.loadProfile(r, profileAvatarURL)
	if err != nil {
		return 0, nil, err
	}
	return profileField(profileAvatarURL, p.AvatarURL)
}

// profileField renders one field; the spec answers 404 for an unset one.
func profileField(key, value string) (int, any, error) {
	if value == "" {
		return 0, nil, errNotFound("Profile field " + key + " is not set")
	}
	return http.StatusOK, map[string]string{key: value}, nil
}

// PUT /profile/{userId}/displayname
func (s *Server) setDisplayName(r *http.Request) (int, any, error) {
	name, err := s.readProfileUpdate(r, profileDisplayName)
	if err != nil {
		return 0, nil, err
	}
	if utf8.RuneCountInString(name) > maxDisplayNameLength {
		return 0, nil, errInvalidParam("displayname is too long")
	}
	c := callerFrom(r.Context())
	if err := s.store.SetDisplayName(r.Context(), c.Localpart, name); err != nil {
		return 0, nil, err
	}
	return s.profileChanged(r)
}

// PUT /profile/{userId}/avatar_url
func (s *Server) setAvatarURL(r *http.Request) (int, any, error) {
	url, err := s.readProfileUpdate(r, profileAvatarURL)
	if err != nil {
		return 0, nil, err
	}
	if len(url) > maxAvatarURLLength {
		return 0, nil, errInvalidParam("avatar_url is too long")
	}
	if url != "" && !isMXCURI(url) {
		return 0, nil, errInvalidParam("avatar_url must be an mxc:// URI")
	}
	c := callerFrom(r.Context())
	if err := s.store.SetAvatarURL(r.Context(), c.Localpart, url); err != nil {
		return 0, nil, err
	}
	return s.profileChanged(r)
}

// readProfileUpdate checks that the caller owns the path's profile and
// returns the string value of key in the body. An empty string clears the
// field; null and other types are refused.
func (s *Server) readProfileUpdate(r *http.Request, key string) (string, error) {
	lp, _, local, err := s.profileOwner(r)
	if err != nil {
		return "", err
	}
	c := callerFrom(r.Context())
	if !local || lp != c.Localpart {
		return "", errForbidden("Cannot set another user's profile")
	}
	var body map[string]json.RawMessage
	if err := decodeJSON(r, &body); err != nil {
		return "", err
	}
	raw, ok := body[key]
	if !ok {
		return "", errMissingParam("missing " + key)
	}
	var v string
	if string(raw) == "null" || json.Unmarshal(raw, &v) != nil {
		return "", errBadJSON(key + " must be a string")
	}
	return v, nil
}

// profileChanged runs the after-change hook and answers {}.
func (s *Server) profileChanged(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	s.profiles.forget(c.Localpart)
	if err := s.afterProfileChange(r.Context(), c); err != nil {
		zerolog.Ctx(r.Context()).Warn().Err(err).Msg("profile change not propagated") // the logger has user_id
	}
	return http.StatusOK, struct{}{}, nil
}

// isMXCURI checks the shape mxc://<server-name>/<media-id>.
func isMXCURI(s string) bool {
	rest, ok := strings.CutPrefix(s, "mxc://")
	if !ok {
		return false
	}
	server, media, ok := strings.Cut(rest, "/")
	return ok && server != "" && media != "" && !strings.Contains(media, "/")
}
