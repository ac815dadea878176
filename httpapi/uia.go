package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/soma-chat/soma/accounts"
	"github.com/soma-chat/soma/persistence"
)

// User-interactive authentication (UIA): the 401 challenge that registration
// and the sensitive endpoints (deleting devices, changing the password,
// deactivating) answer until the client has completed a flow's stages.
//
// Registration offers m.login.dummy, which proves nothing, so it keeps no
// session state. The sensitive endpoints offer one m.login.password stage
// for the caller's own account; their sessions live in memory (uiaSessions),
// tied to the user and the operation they were started for, and expire.

// uiaResponse is the 401 body of the user-interactive authentication API;
// a failed attempt at a stage adds errcode and error.
type uiaResponse struct {
	Flows     []uiaFlow      `json:"flows"`
	Params    map[string]any `json:"params"`
	Session   string         `json:"session"`
	Completed []string       `json:"completed"`
	ErrCode   string         `json:"errcode,omitempty"`
	Err       string         `json:"error,omitempty"`
}

type uiaFlow struct {
	Stages []string `json:"stages"`
}

// newUIAResponse is the challenge offering one flow of the given stages in
// session; "" gives a new random session ID.
func newUIAResponse(session string, stages ...string) *uiaResponse {
	if session == "" {
		session = newUIASessionID()
	}
	return &uiaResponse{
		Flows:     []uiaFlow{{Stages: stages}},
		Params:    map[string]any{},
		Session:   session,
		Completed: []string{},
	}
}

// failed adds a failed attempt's error to the challenge.
func (u *uiaResponse) failed(e *MatrixError) *uiaResponse {
	u.ErrCode, u.Err = e.ErrCode, e.Err
	return u
}

func newUIASessionID() string {
	return base64.RawURLEncoding.EncodeToString(cryptoRandBytes(24))
}

// UIA sessions are kept this long after they start: long enough to type a
// password, short enough that a leaked session ID is soon worthless.
const uiaSessionLifetime = 15 * time.Minute

// uiaMaxSessions bounds the sessions kept in memory. Starting one needs an
// access token and is rate-limited per user; past the bound, the sessions
// closest to expiry are dropped first.
const uiaMaxSessions = 100000

// uiaSession is one user's authentication for one operation.
type uiaSession struct {
	userID string
	// op is the method and path the session was started for: a session
	// completed to delete one device does not deactivate the account.
	op        string
	expires   time.Time
	completed bool
}

// uiaSessions holds the live UIA sessions of the sensitive endpoints.
type uiaSessions struct {
	mu  sync.Mutex
	m   map[string]*uiaSession
	now func() time.Time
}

func newUIASessions(now func() time.Time) *uiaSessions {
	return &uiaSessions{m: map[string]*uiaSession{}, now: now}
}

// start opens a session for userID's op and returns its ID.
func (u *uiaSessions) start(userID, op string) string {
	id := newUIASessionID()
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.m) >= uiaMaxSessions {
		u.sweep(now)
	}
	u.m[id] = &uiaSession{userID: userID, op: op, expires: now.Add(uiaSessionLifetime)}
	return id
}

// sweep drops expired sessions and, if that is not enough, the oldest
// half. The caller holds mu.
func (u *uiaSessions) sweep(now time.Time) {
	for id, s := range u.m {
		if !now.Before(s.expires) {
			delete(u.m, id)
		}
	}
	if len(u.m) < uiaMaxSessions {
		return
	}
	cutoff := now.Add(uiaSessionLifetime / 2)
	for id, s := range u.m {
		if s.expires.Before(cutoff) {
			delete(u.m, id)
		}
	}
	if len(u.m) >= uiaMaxSessions {
		clear(u.m)
	}
}

// get returns a copy of userID's live session id; false for an unknown or
// expired session, or one of another user.
func (u *uiaSessions) get(id, userID string) (uiaSession, bool) {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.m[id]
	if !ok || s.userID != userID {
		return uiaSession{}, false
	}
	if !now.Before(s.expires) {
		delete(u.m, id)
		return uiaSession{}, false
	}
	return *s, true
}

// complete marks a session's only stage done.
func (u *uiaSessions) complete(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.m[id]; ok {
		s.completed = true
	}
}

// uiaAuth is the auth dict of a request to a sensitive endpoint. The
// m.login.password stage carries what POST /login does.
type uiaAuth struct {
	Session string `json:"session"`
	loginRequest
}

// errUIASessionUnknown answers a session ID the server does not know (or
// no longer knows): the client starts again without one.
func errUIASessionUnknown() *MatrixError {
	return matrixError(http.StatusBadRequest, "M_UNKNOWN", "Unknown or expired authentication session")
}

// authenticate runs user-interactive authentication for the caller of a
// sensitive endpoint: one m.login.password stage, with the caller's own
// user and password. auth is the request's auth dict (nil or JSON null
// when absent). It returns a nil challenge and error when the request may
// proceed; otherwise the caller answers 401 with the challenge, or the
// error.
func (s *Server) authenticate(r *http.Request, auth json.RawMessage) (*uiaResponse, error) {
	c := callerFrom(r.Context())
	op := r.Method + " " + r.URL.Path
	if len(auth) == 0 || string(auth) == "null" {
		return newUIAResponse(s.uia.start(c.UserID, op), loginTypePassword), nil
	}
	var a uiaAuth
	if err := json.Unmarshal(auth, &a); err != nil {
		return nil, errBadJSON("auth must be an object with the fields of an authentication stage")
	}
	var sess uiaSession
	if a.Session == "" {
		// A client may attempt the stage at once, without a session.
		a.Session = s.uia.start(c.UserID, op)
		sess, _ = s.uia.get(a.Session, c.UserID)
	} else {
		var ok bool
		if sess, ok = s.uia.get(a.Session, c.UserID); !ok {
			return nil, errUIASessionUnknown()
		}
		if sess.op != op {
			return nil, errForbidden("The requested operation changed during the authentication session")
		}
	}
	challenge := func() *uiaResponse { return newUIAResponse(a.Session, loginTypePassword) }

	switch {
	case sess.completed:
		// Completed stages cannot be retried: the result is the API call's.
		return nil, nil
	case a.Type == "":
		// The client believes the session complete; it is not.
		return challenge(), nil
	case a.Type != loginTypePassword:
		return challenge().failed(matrixError(http.StatusUnauthorized, "M_UNRECOGNIZED", "unsupported authentication type "+a.Type)), nil
	}
	if e := s.limitPasswordAttempt(r); e != nil {
		return nil, e
	}
	if err := s.checkOwnPassword(r, c, &a.loginRequest); err != nil {
		var me *MatrixError
		if errors.As(err, &me) {
			return challenge().failed(me), nil
		}
		return nil, err
	}
	s.uia.complete(a.Session)
	return nil, nil
}

// checkOwnPassword checks an m.login.password stage: the identifier must
// name the caller, and the password be theirs. A refusal is a *MatrixError.
func (s *Server) checkOwnPassword(r *http.Request, c *caller, req *loginRequest) error {
	user, err := loginUser(req)
	if err != nil {
		return err
	}
	lp, err := s.loginLocalpart(user)
	if err != nil {
		return err
	}
	if req.Password == nil {
		return errMissingParam("missing password")
	}
	if lp != c.Localpart {
		// Authenticating as someone else proves nothing about the caller.
		return errForbidden("Invalid username or password")
	}
	if len(*req.Password) > maxPasswordLength {
		return errForbidden("Invalid username or password")
	}
	acc, err := s.store.GetAccount(r.Context(), lp)
	if errors.Is(err, persistence.ErrNotFound) {
		return errForbidden("Invalid username or password")
	}
	if err != nil {
		return err
	}
	if acc.Deactivated || !accounts.CheckPassword(acc.PasswordHash, *req.Password) {
		return errForbidden("Invalid username or password")
	}
	return nil
}

// limitPasswordAttempt takes a password attempt from the client address's
// login bucket: guessing through UIA costs what guessing at /login does.
func (s *Server) limitPasswordAttempt(r *http.Request) *MatrixError {
	if s.limits == nil {
		return nil
	}
	if ok, wait := s.limits.login.take(s.limits.clientAddr(r)); !ok {
		return errLimitExceeded("Too many password attempts from this address", wait)
	}
	return nil
}
