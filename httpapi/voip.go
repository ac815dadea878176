package httpapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// TURNOptions is the TURN server GET /voip/turnServer hands out. With
// SharedSecret, each request gets time-limited credentials in the coturn
// REST API convention (coturn's use-auth-secret / static-auth-secret);
// otherwise the static Username and Password. No URIs: the endpoint answers
// {} and clients call without TURN.
type TURNOptions struct {
	URIs         []string
	SharedSecret string
	// UserLifetime is how long credentials stay valid (and the ttl); 1h
	// when zero.
	UserLifetime time.Duration
	Username     string
	Password     string
}

type turnServerResponse struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	URIs     []string `json:"uris"`
	TTL      int64    `json:"ttl"`
}

// turnServer implements GET /voip/turnServer.
func (s *Server) turnServer(r *http.Request) (int, any, error) {
	t := s.opts.TURN
	if len(t.URIs) == 0 || (t.SharedSecret == "" && t.Username == "") {
		return http.StatusOK, struct{}{}, nil
	}
	lifetime := t.UserLifetime
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	resp := turnServerResponse{URIs: t.URIs, TTL: int64(lifetime / time.Second), Username: t.Username, Password: t.Password}
	if t.SharedSecret != "" {
		resp.Username, resp.Password = turnCredentials(t.SharedSecret, callerFrom(r.Context()).UserID, time.Now().Add(lifetime))
	}
	return http.StatusOK, resp, nil
}

// turnCredentials are the coturn REST API credentials valid until expiry:
// the username is "<expiry unix time>:<user ID>", the password the base64
// HMAC-SHA1 of the username keyed by the shared secret.
func turnCredentials(secret, userID string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + userID
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// thirdPartyProtocols implements GET /thirdparty/protocols: Soma bridges
// to no third-party network (no application services yet).
func (s *Server) thirdPartyProtocols(*http.Request) (int, any, error) {
	return http.StatusOK, struct{}{}, nil
}
