package httpapi

import (
	"errors"
	"net/http"

	"github.com/soma-chat/soma/persistence"
)

// whoami implements GET /account/whoami.
func (s *Server) whoami(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	return http.StatusOK, map[string]any{
		"user_id":   c.UserID,
		"device_id": c.DeviceID,
		"is_guest":  false,
	}, nil
}

// logout implements POST /logout: it deletes the calling device, and with
// it the token, and drops the token from the cache.
func (s *Server) logout(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	// ErrNotFound: a concurrent logout got there first, with the same result.
	err := s.store.DeleteDevice(r.Context(), c.Localpart, c.DeviceID)
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, err
	}
	s.tokens.forgetUser(c.Localpart, c.DeviceID)
	return http.StatusOK, struct{}{}, nil
}

// logoutAll implements POST /logout/all: every device of the user goes.
func (s *Server) logoutAll(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	err := s.store.DeleteAllDevices(r.Context(), c.Localpart)
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, err
	}
	s.tokens.forgetUser(c.Localpart, "")
	return http.StatusOK, struct{}{}, nil
}
