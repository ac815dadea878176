package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

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
	if err := s.pruneDeviceKeys(r.Context(), c.Localpart); err != nil {
		return 0, nil, err
	}
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
	if err := s.pruneDeviceKeys(r.Context(), c.Localpart); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// changePasswordRequest is the body of POST /account/password.
type changePasswordRequest struct {
	NewPassword *string `json:"new_password"`
	// LogoutDevices defaults to true.
	LogoutDevices *bool           `json:"logout_devices"`
	Auth          json.RawMessage `json:"auth"`
}

// changePassword implements POST /account/password for a logged-in user:
// after user-interactive authentication with the current password, the new
// one replaces it and, unless logout_devices is false, every other device
// is logged out. The calling device keeps its token, as the spec asks.
func (s *Server) changePassword(r *http.Request) (int, any, error) {
	var req changePasswordRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.NewPassword == nil {
		return 0, nil, errMissingParam("missing new_password")
	}
	if err := checkNewPassword(*req.NewPassword); err != nil {
		return 0, nil, err
	}
	if challenge, err := s.authenticate(r, req.Auth); challenge != nil || err != nil {
		return http.StatusUnauthorized, challenge, err
	}
	c := callerFrom(r.Context())
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := s.setPassword(r.Context(), c.Localpart, *req.NewPassword, logout, c.DeviceID); err != nil {
		return 0, nil, err
	}
	zerolog.Ctx(r.Context()).Info().Bool("logout_devices", logout).Msg("password changed")
	return http.StatusOK, struct{}{}, nil
}

// setPassword gives the account a new password and, when logout is set,
// logs out every device but keepDevice ("" keeps none). Unknown accounts
// are 404 M_NOT_FOUND.
func (s *Server) setPassword(ctx context.Context, localpart, password string, logout bool, keepDevice string) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	if err := s.store.SetPasswordHash(ctx, localpart, hash); err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return errNotFound("Unknown user")
		}
		return err
	}
	if !logout {
		return nil
	}
	if keepDevice == "" {
		err = s.store.DeleteAllDevices(ctx, localpart)
	} else {
		err = s.store.DeleteDevicesExcept(ctx, localpart, keepDevice)
	}
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return err
	}
	s.tokens.forgetUser(localpart, "")
	return s.pruneDeviceKeys(ctx, localpart)
}

// checkNewPassword refuses a password no login could send.
func checkNewPassword(p string) error {
	if p == "" || len(p) > maxPasswordLength || strings.ContainsRune(p, 0) {
		return errInvalidParam("Invalid password")
	}
	return nil
}

// deactivateAccount implements POST /account/deactivate: after
// user-interactive authentication the account can no longer log in, and
// every device and token of it is gone.
func (s *Server) deactivateAccount(r *http.Request) (int, any, error) {
	var req struct {
		Auth     json.RawMessage `json:"auth"`
		IDServer string          `json:"id_server"`
		Erase    bool            `json:"erase"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if challenge, err := s.authenticate(r, req.Auth); challenge != nil || err != nil {
		return http.StatusUnauthorized, challenge, err
	}
	c := callerFrom(r.Context())
	if err := s.deactivate(r.Context(), c.Localpart); err != nil {
		return 0, nil, err
	}
	zerolog.Ctx(r.Context()).Info().Msg("account deactivated by its owner")
	// Soma keeps no third-party identifiers, so there is nothing to unbind
	// from an identity server: the spec asks for "success" then.
	return http.StatusOK, map[string]string{"id_server_unbind_result": "success"}, nil
}

// deactivate marks the account deactivated and ends every device and
// token of it, cached ones included. Unknown accounts are 404 M_NOT_FOUND.
func (s *Server) deactivate(ctx context.Context, localpart string) error {
	if err := s.store.DeactivateAccount(ctx, localpart); err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return errNotFound("Unknown user")
		}
		return err
	}
	s.tokens.forgetUser(localpart, "")
	return s.pruneDeviceKeys(ctx, localpart)
}

// threepids implements GET /account/3pid: Soma binds no third-party
// identifiers to accounts.
func (s *Server) threepids(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]any{"threepids": []any{}}, nil
}
