package httpapi

import (
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// OpenID tokens let a user prove who they are to a third party (an
// integration manager, a widget): the client asks its homeserver for a
// token and hands it to the third party, which asks the homeserver's
// federation API (GET /_matrix/federation/v1/openid/userinfo) whom it
// belongs to.

// openIDTokenLifetime is how long an OpenID token is valid (expires_in).
const openIDTokenLifetime = time.Hour

// openIDMaxTokens bounds the tokens kept; issuing one needs an access token
// and is rate-limited per user.
const openIDMaxTokens = 100000

// openIDTokens are the live OpenID tokens, by hash, in memory: a restart
// invalidates them, which costs a third party one more round trip.
// Federation will verify them with lookup once it serves
// /_matrix/federation/v1/openid/userinfo.
type openIDTokens struct {
	mu  sync.Mutex
	m   map[string]openIDToken
	now func() time.Time
}

type openIDToken struct {
	userID  string
	expires time.Time
}

func newOpenIDTokens(now func() time.Time) *openIDTokens {
	return &openIDTokens{m: map[string]openIDToken{}, now: now}
}

// issue returns a new token for userID, valid for openIDTokenLifetime.
func (o *openIDTokens) issue(userID string) string {
	token := base64.RawURLEncoding.EncodeToString(cryptoRandBytes(accessTokenBytes))
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.m) >= openIDMaxTokens {
		for h, t := range o.m {
			if !now.Before(t.expires) {
				delete(o.m, h)
			}
		}
		if len(o.m) >= openIDMaxTokens {
			clear(o.m)
		}
	}
	o.m[hashToken(token)] = openIDToken{userID: userID, expires: now.Add(openIDTokenLifetime)}
	return token
}

// lookup returns the user a live token was issued to.
func (o *openIDTokens) lookup(token string) (userID string, ok bool) {
	h := hashToken(token)
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.m[h]
	if !ok {
		return "", false
	}
	if !now.Before(t.expires) {
		delete(o.m, h)
		return "", false
	}
	return t.userID, true
}

// requestOpenIDToken implements POST /user/{userId}/openid/request_token,
// for the caller's own user ID only.
func (s *Server) requestOpenIDToken(r *http.Request) (int, any, error) {
	userID, err := urlParam(r, "userId")
	if err != nil {
		return 0, nil, err
	}
	var body struct{}
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	if userID != c.UserID {
		return 0, nil, errForbidden("Cannot request an OpenID token for another user")
	}
	return http.StatusOK, map[string]any{
		"access_token":       s.openID.issue(c.UserID),
		"token_type":         "Bearer",
		"matrix_server_name": s.opts.ServerName,
		"expires_in":         int64(openIDTokenLifetime / time.Second),
	}, nil
}
