package httpapi

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha1" // the protocol's MAC: HMAC-SHA1 is still sound as a MAC
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
)

// Shared-secret registration, as Synapse serves it: whoever knows the
// configured secret can create accounts, admins included, whatever
// registration.enabled says. Operator tools and test suites use it
// (Synapse's register_new_matrix_user, Complement, sytest).
//
// GET returns a nonce. POST sends it back with the account and a MAC: the
// hex HMAC-SHA1, keyed by the secret, of
//
//	nonce \0 username \0 password \0 ("admin" | "notadmin") [\0 user_type]
//
// A nonce is good for one POST, whatever its outcome, within nonceTTL.

const sharedSecretRegisterPath = "/_synapse/admin/v1/register"

// nonceTTL is how long a nonce stays valid (Synapse's NONCE_TIMEOUT).
const nonceTTL = 60 * time.Second

// maxNonces bounds the nonces kept: anyone can ask for one. Past it the
// oldest goes first; a flood of requests can thus void an operator's nonce,
// which they then ask again for.
const maxNonces = 10_000

// sharedSecretRoutes mounts the endpoint when a secret is configured;
// otherwise it does not exist (404 M_UNRECOGNIZED).
func (s *Server) sharedSecretRoutes(r chi.Router) {
	if s.nonces == nil {
		return
	}
	r.Get(sharedSecretRegisterPath, s.serve(s.sharedSecretNonce))
	r.Post(sharedSecretRegisterPath, s.serve(s.sharedSecretRegister))
}

// sharedSecretNonce implements GET /_synapse/admin/v1/register.
func (s *Server) sharedSecretNonce(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]string{"nonce": s.nonces.issue()}, nil
}

type sharedSecretRequest struct {
	Nonce       *string `json:"nonce"`
	Username    *string `json:"username"`
	DisplayName string  `json:"displayname"`
	Password    *string `json:"password"`
	Admin       bool    `json:"admin"`
	// UserType is covered by the MAC when present; Soma has no user types.
	UserType string  `json:"user_type"`
	MAC      *string `json:"mac"`
}

// sharedSecretRegister implements POST /_synapse/admin/v1/register. The
// checks run in Synapse's order: the nonce is spent first, and nothing about
// existing accounts is told before the MAC is verified.
func (s *Server) sharedSecretRegister(r *http.Request) (int, any, error) {
	var req sharedSecretRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Nonce == nil {
		return 0, nil, errBadJSON("nonce must be specified")
	}
	if !s.nonces.take(*req.Nonce) {
		return 0, nil, errInvalidParam("unrecognised nonce")
	}
	if req.Username == nil {
		return 0, nil, errBadJSON("username must be specified")
	}
	if len(*req.Username) > 512 || strings.ContainsRune(*req.Username, 0) {
		return 0, nil, errInvalidParam("Invalid username")
	}
	if req.Password == nil {
		return 0, nil, errBadJSON("password must be specified")
	}
	if *req.Password == "" || len(*req.Password) > maxPasswordLength || strings.ContainsRune(*req.Password, 0) {
		return 0, nil, errInvalidParam("Invalid password")
	}
	if req.MAC == nil {
		return 0, nil, errBadJSON("mac must be specified")
	}
	got, err := hex.DecodeString(*req.MAC)
	want := registrationMAC(s.opts.RegistrationSharedSecret, *req.Nonce, *req.Username, *req.Password, req.Admin, req.UserType)
	if err != nil || !hmac.Equal(got, want) {
		zerolog.Ctx(r.Context()).Warn().Str("remote_addr", r.RemoteAddr).Msg("shared-secret registration with a wrong MAC")
		return 0, nil, errForbidden("HMAC incorrect")
	}

	localpart, err := s.createNamedAccount(r.Context(), *req.Username, *req.Password, req.Admin, req.DisplayName)
	if err != nil {
		return 0, nil, err
	}
	userID := s.localUserID(localpart)
	zerolog.Ctx(r.Context()).Info().Str("user_id", userID).Bool("admin", req.Admin).Msg("account created by shared-secret registration")
	deviceID, token, err := s.issueDevice(r.Context(), localpart, "", "")
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, registerResponse{UserID: userID, AccessToken: token, DeviceID: deviceID, HomeServer: s.opts.ServerName}, nil
}

// registrationMAC is the MAC a shared-secret registration must carry.
func registrationMAC(secret, nonce, username, password string, admin bool, userType string) []byte {
	m := hmac.New(sha1.New, []byte(secret))
	role := "notadmin"
	if admin {
		role = "admin"
	}
	parts := []string{nonce, username, password, role}
	if userType != "" {
		parts = append(parts, userType)
	}
	m.Write([]byte(strings.Join(parts, "\x00")))
	return m.Sum(nil)
}

// nonceStore hands out single-use nonces that expire after nonceTTL.
type nonceStore struct {
	now func() time.Time

	mu     sync.Mutex
	issued map[string]*list.Element // of *issuedNonce
	order  list.List                // oldest at the front
}

type issuedNonce struct {
	nonce string
	at    time.Time
}

func newNonceStore(now func() time.Time) *nonceStore {
	ns := &nonceStore{now: now, issued: map[string]*list.Element{}}
	ns.order.Init()
	return ns
}

// issue returns a new nonce.
func (ns *nonceStore) issue() string {
	nonce := hex.EncodeToString(cryptoRandBytes(32))
	now := ns.now()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.forgetExpired(now)
	for ns.order.Len() >= maxNonces {
		ns.remove(ns.order.Front())
	}
	ns.issued[nonce] = ns.order.PushBack(&issuedNonce{nonce: nonce, at: now})
	return nonce
}

// take spends a nonce: true when it was issued, unspent and unexpired.
func (ns *nonceStore) take(nonce string) bool {
	now := ns.now()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.forgetExpired(now)
	e, ok := ns.issued[nonce]
	if !ok {
		return false
	}
	ns.remove(e)
	return true
}

// forgetExpired drops the nonces older than nonceTTL, all at the front.
func (ns *nonceStore) forgetExpired(now time.Time) {
	for e := ns.order.Front(); e != nil && now.Sub(e.Value.(*issuedNonce).at) >= nonceTTL; e = ns.order.Front() {
		ns.remove(e)
	}
}

func (ns *nonceStore) remove(e *list.Element) {
	delete(ns.issued, e.Value.(*issuedNonce).nonce)
	ns.order.Remove(e)
}

func (ns *nonceStore) len() int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.order.Len()
}

// createNamedAccount creates the account an operator named (shared-secret
// registration, the admin API): the name must be valid and free.
func (s *Server) createNamedAccount(ctx context.Context, username, password string, admin bool, displayName string) (string, error) {
	localpart, err := s.checkUsernameAvailable(ctx, username)
	if err != nil {
		return "", err
	}
	return s.createAccount(ctx, newAccount{Localpart: localpart, Password: password, Admin: admin, DisplayName: displayName})
}
