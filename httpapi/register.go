package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/accounts"
	"github.com/soma-chat/soma/persistence"
)

// maxPasswordLength bounds passwords (in bytes), as Synapse does: hashing
// an unbounded password is a cheap way to make the server work.
const maxPasswordLength = 512

// maxDeviceIDLength bounds client-chosen device IDs.
const maxDeviceIDLength = 512

// hashPassword is accounts.HashPassword; the package's tests swap in a
// cheap bcrypt cost, since the real one takes seconds under -race.
var hashPassword = accounts.HashPassword

// authDummy is the only user-interactive authentication stage Soma offers
// for registration: it proves nothing, so registration keeps no session
// state (see uia.go). A session ID is still handed out because clients
// echo it back.
const authDummy = "m.login.dummy"

type registerRequest struct {
	Auth *struct {
		Type    string `json:"type"`
		Session string `json:"session"`
	} `json:"auth"`
	Username                 *string `json:"username"`
	Password                 *string `json:"password"`
	DeviceID                 string  `json:"device_id"`
	InitialDeviceDisplayName string  `json:"initial_device_display_name"`
	InhibitLogin             bool    `json:"inhibit_login"`
}

type registerResponse struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token,omitempty"`
	DeviceID    string `json:"device_id,omitempty"`
	HomeServer  string `json:"home_server"`
}

// register implements POST /register for user accounts.
func (s *Server) register(r *http.Request) (int, any, error) {
	switch kind := r.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return 0, nil, matrixError(http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is not allowed")
	default:
		return 0, nil, errInvalidParam("unknown account kind " + kind)
	}
	if !s.opts.RegistrationEnabled {
		return 0, nil, errForbidden("Registration is disabled")
	}
	var req registerRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}

	// The spec asks for these checks before authentication, so that a
	// client learns of a taken or invalid name before doing any stage.
	if req.Password != nil && len(*req.Password) > maxPasswordLength {
		return 0, nil, errInvalidParam("password too long")
	}
	if len(req.DeviceID) > maxDeviceIDLength {
		return 0, nil, errInvalidParam("device_id too long")
	}
	localpart := ""
	if req.Username != nil {
		lp, err := s.checkUsernameAvailable(r.Context(), *req.Username)
		if err != nil {
			return 0, nil, err
		}
		localpart = lp
	}

	switch {
	case req.Auth == nil:
		return http.StatusUnauthorized, newUIAResponse("", authDummy), nil
	case req.Auth.Type == authDummy:
	case req.Auth.Type == "":
		// A client retrying a session it believes complete: no stage of
		// it has been done here.
		return http.StatusUnauthorized, newUIAResponse(req.Auth.Session, authDummy), nil
	default:
		resp := newUIAResponse(req.Auth.Session, authDummy)
		resp.ErrCode, resp.Err = "M_UNRECOGNIZED", "unsupported authentication type "+req.Auth.Type
		return http.StatusUnauthorized, resp, nil
	}

	if req.Password == nil || *req.Password == "" {
		return 0, nil, errMissingParam("missing password")
	}
	localpart, err := s.createAccount(r.Context(), newAccount{Localpart: localpart, Password: *req.Password})
	if err != nil {
		return 0, nil, err
	}

	resp := registerResponse{UserID: s.localUserID(localpart), HomeServer: s.opts.ServerName}
	if !req.InhibitLogin {
		resp.DeviceID, resp.AccessToken, err = s.issueDevice(r.Context(), localpart, req.DeviceID, req.InitialDeviceDisplayName)
		if err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, resp, nil
}

// newAccount is an account to create: what /register and shared-secret
// registration have in common.
type newAccount struct {
	// Localpart is the validated, lower-cased localpart; "" picks a random one.
	Localpart string
	Password  string
	Admin     bool
	// DisplayName is the initial display name; "" means the localpart.
	DisplayName string
}

// createAccount hashes the password, stores the account and gives it its
// display name. It returns the localpart, or M_USER_IN_USE when another
// request took it since it was checked.
func (s *Server) createAccount(ctx context.Context, a newAccount) (string, error) {
	hash, err := hashPassword(a.Password)
	if err != nil {
		return "", err
	}
	acc := persistence.Account{Localpart: a.Localpart, PasswordHash: hash, IsAdmin: a.Admin, CreatedTS: time.Now().UnixMilli()}
	if acc.Localpart == "" {
		acc.Localpart, err = s.createGeneratedAccount(ctx, acc)
	} else {
		err = s.store.CreateAccount(ctx, acc)
	}
	if errors.Is(err, persistence.ErrUserExists) {
		return "", errUserInUse()
	}
	if err != nil {
		return "", err
	}
	// As Synapse and Dendrite do, a new user is displayed by their localpart
	// until they choose a name. The account exists now: failing the request
	// over a cosmetic default would leave the client unable to retry.
	name := a.DisplayName
	if name == "" {
		name = acc.Localpart
	}
	if err := s.store.SetDisplayName(ctx, acc.Localpart, name); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("localpart", acc.Localpart).Msg("display name not set")
	}
	return acc.Localpart, nil
}

// createGeneratedAccount stores acc under a random localpart, for
// registrations without a username.
func (s *Server) createGeneratedAccount(ctx context.Context, acc persistence.Account) (string, error) {
	for range 5 {
		acc.Localpart = generateLocalpart()
		err := s.store.CreateAccount(ctx, acc)
		if errors.Is(err, persistence.ErrUserExists) {
			continue
		}
		return acc.Localpart, err
	}
	return "", errors.New("register: could not pick a free localpart")
}

// registerAvailable implements GET /register/available.
func (s *Server) registerAvailable(r *http.Request) (int, any, error) {
	if !s.opts.RegistrationEnabled {
		return 0, nil, errForbidden("Registration is disabled")
	}
	q := r.URL.Query()
	if !q.Has("username") {
		return 0, nil, errMissingParam("missing username")
	}
	if _, err := s.checkUsernameAvailable(r.Context(), q.Get("username")); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]bool{"available": true}, nil
}

// checkUsernameAvailable lower-cases a requested username (as Synapse does),
// validates it as a localpart and checks that no account has it.
func (s *Server) checkUsernameAvailable(ctx context.Context, username string) (string, error) {
	lp := strings.ToLower(username)
	if lp == "" {
		return "", errInvalidUsername("username must not be empty")
	}
	if err := accounts.ValidateLocalpart(lp, s.opts.ServerName); err != nil {
		return "", errInvalidUsername(err.Error())
	}
	_, err := s.store.GetAccount(ctx, lp)
	switch {
	case err == nil:
		return "", errUserInUse()
	case errors.Is(err, persistence.ErrNotFound):
		return lp, nil
	default:
		return "", err
	}
}

func errUserInUse() *MatrixError {
	return matrixError(http.StatusBadRequest, "M_USER_IN_USE", "User ID already taken")
}

func errInvalidUsername(msg string) *MatrixError {
	return matrixError(http.StatusBadRequest, "M_INVALID_USERNAME", msg)
}

// generateLocalpart returns a random localpart: a letter, then letters and
// digits (all-digit localparts are what other servers give guests).
func generateLocalpart() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	const alnum = letters + "0123456789"
	b := cryptoRandBytes(12)
	out := make([]byte, len(b))
	out[0] = letters[int(b[0])%len(letters)]
	for i := 1; i < len(b); i++ {
		out[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(out)
}

func cryptoRandBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b
}
