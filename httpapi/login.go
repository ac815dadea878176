package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/soma-chat/soma/accounts"
	"github.com/soma-chat/soma/persistence"
)

const loginTypePassword = "m.login.password"

type loginRequest struct {
	Type       string `json:"type"`
	Identifier *struct {
		Type string  `json:"type"`
		User *string `json:"user"`
	} `json:"identifier"`
	// User, Medium and Address are the deprecated pre-identifier fields.
	User                     *string `json:"user"`
	Medium                   string  `json:"medium"`
	Address                  string  `json:"address"`
	Password                 *string `json:"password"`
	DeviceID                 string  `json:"device_id"`
	InitialDeviceDisplayName string  `json:"initial_device_display_name"`
}

type loginResponse struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
	HomeServer  string `json:"home_server"`
}

// loginFlows implements GET /login.
func (s *Server) loginFlows(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]any{
		"flows": []map[string]string{{"type": loginTypePassword}},
	}, nil
}

// login implements POST /login with m.login.password.
func (s *Server) login(r *http.Request) (int, any, error) {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	switch req.Type {
	case loginTypePassword:
	case "":
		return 0, nil, errMissingParam("missing login type")
	default:
		return 0, nil, matrixError(http.StatusBadRequest, "M_UNKNOWN", "Unknown login type "+req.Type)
	}
	user, err := loginUser(&req)
	if err != nil {
		return 0, nil, err
	}
	localpart, err := s.loginLocalpart(user)
	if err != nil {
		return 0, nil, err
	}
	if req.Password == nil {
		return 0, nil, errMissingParam("missing password")
	}
	if len(*req.Password) > maxPasswordLength {
		return 0, nil, errForbidden("Invalid username or password")
	}
	if len(req.DeviceID) > maxDeviceIDLength {
		return 0, nil, errInvalidParam("device_id too long")
	}

	acc, err := s.store.GetAccount(r.Context(), localpart)
	if errors.Is(err, persistence.ErrNotFound) {
		// Spend the time a real check would, so that response times do not
		// tell which users exist.
		accounts.CheckPassword(dummyPasswordHash(), *req.Password)
		return 0, nil, errForbidden("Invalid username or password")
	}
	if err != nil {
		return 0, nil, err
	}
	if !accounts.CheckPassword(acc.PasswordHash, *req.Password) {
		return 0, nil, errForbidden("Invalid username or password")
	}
	if acc.Deactivated {
		// Only said to someone who knows the password.
		return 0, nil, matrixError(http.StatusForbidden, "M_USER_DEACTIVATED", "This account has been deactivated")
	}

	deviceID, token, err := s.issueDevice(r.Context(), localpart, req.DeviceID, req.InitialDeviceDisplayName)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, loginResponse{
		UserID:      s.localUserID(localpart),
		AccessToken: token,
		DeviceID:    deviceID,
		HomeServer:  s.opts.ServerName,
	}, nil
}

// loginUser returns the user named by the identifier, or by the deprecated
// top-level user field.
func loginUser(req *loginRequest) (string, error) {
	if id := req.Identifier; id != nil {
		switch id.Type {
		case "m.id.user":
			if id.User == nil || *id.User == "" {
				return "", errMissingParam("identifier has no user")
			}
			return *id.User, nil
		case "m.id.thirdparty", "m.id.phone":
			return "", errForbidden("No account is bound to this third-party identifier")
		case "":
			return "", errMissingParam("identifier has no type")
		default:
			return "", matrixError(http.StatusBadRequest, "M_UNKNOWN", "Unknown identifier type "+id.Type)
		}
	}
	if req.User != nil && *req.User != "" {
		return *req.User, nil
	}
	if req.Medium != "" || req.Address != "" {
		return "", errForbidden("No account is bound to this third-party identifier")
	}
	return "", errMissingParam("missing identifier")
}

// loginLocalpart accepts a localpart or a full user ID of this server.
// Localparts are matched lower-cased, as registration stores them.
func (s *Server) loginLocalpart(user string) (string, error) {
	if rest, ok := strings.CutPrefix(user, "@"); ok {
		lp, server, ok := strings.Cut(rest, ":")
		if !ok || lp == "" || server == "" {
			return "", errInvalidParam("malformed user ID")
		}
		if server != s.opts.ServerName {
			return "", errForbidden("User ID is not on this server")
		}
		user = lp
	}
	return strings.ToLower(user), nil
}

// issueDevice logs a device in: it creates the device (a random ID when
// none is given) or, for a known device ID, replaces its access token. It
// returns the device ID and the new token.
func (s *Server) issueDevice(ctx context.Context, localpart, deviceID, displayName string) (string, string, error) {
	dev := persistence.Device{Localpart: localpart, DeviceID: deviceID, DisplayName: displayName, CreatedTS: time.Now().UnixMilli()}
	existed := false
	if deviceID == "" {
		dev.DeviceID = generateDeviceID()
	} else {
		// The spec ignores initial_device_display_name for a known device.
		devs, err := s.store.ListDevices(ctx, localpart)
		if err != nil {
			return "", "", err
		}
		for _, d := range devs {
			if d.DeviceID == deviceID {
				dev, existed = d, true
				break
			}
		}
	}
	token, hash := newAccessToken()
	if err := s.store.UpsertDevice(ctx, dev, hash); err != nil {
		return "", "", err
	}
	if existed {
		s.tokens.forgetUser(localpart, dev.DeviceID)
	}
	return dev.DeviceID, token, nil
}

// generateDeviceID returns ten random upper-case letters.
func generateDeviceID() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := cryptoRandBytes(10)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// dummyPasswordHash is checked against when the user does not exist.
var dummyPasswordHash = sync.OnceValue(func() string {
	h, err := hashPassword("soma: no such user")
	if err != nil {
		return ""
	}
	return h
})

// localUserID is the full user ID of a local user.
func (s *Server) localUserID(localpart string) string {
	return "@" + localpart + ":" + s.opts.ServerName
}
