package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"
)

// maxRequestBody bounds what an inbound federation request may carry
// (a transaction of 50 PDUs of 64 KiB and 100 EDUs fits).
const maxRequestBody = 8 << 20

type originKey struct{}

// OriginFrom returns the verified origin server of an inbound federation
// request, set by the X-Matrix middleware.
func OriginFrom(ctx context.Context) spec.ServerName {
	o, _ := ctx.Value(originKey{}).(spec.ServerName)
	return o
}

// signedRequest is the JSON object an X-Matrix signature covers (spec:
// Request Authentication): method, uri, origin, destination, the content
// when there is a body, and the signatures from the header(s).
type signedRequest struct {
	Method      string                                                 `json:"method"`
	URI         string                                                 `json:"uri"`
	Origin      spec.ServerName                                        `json:"origin"`
	Destination spec.ServerName                                        `json:"destination"`
	Content     json.RawMessage                                        `json:"content,omitempty"`
	Signatures  map[spec.ServerName]map[gomatrixserverlib.KeyID]string `json:"signatures"`
}

// requireXMatrix verifies the X-Matrix Authorization header(s) of a request
// against the keyring before the handler sees it: the origin must be a
// server name, the destination (when given) this server, and one signature
// by a key of the origin valid now must cover method, URI, origin,
// destination and body. The body is read once, bounded, and handed on
// only after the signature checks out. Failures are 401 M_UNAUTHORIZED; a
// body that is not JSON (so cannot have been signed) is 400 M_NOT_JSON.
func (s *Server) requireXMatrix(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, msg := s.parseXMatrix(r)
		if msg != "" {
			s.unauthorized(w, r, req.Origin, msg)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "The request body is too large")
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, "M_BAD_JSON", "Could not read the request body")
			return
		}
		if len(body) > 0 {
			if !json.Valid(body) {
				writeError(w, http.StatusBadRequest, "M_NOT_JSON", "The request body is not JSON")
				return
			}
			req.Content = body
		}
		signed, err := json.Marshal(req)
		if err != nil {
			writeError(w, http.StatusBadRequest, "M_NOT_JSON", "The request body is not JSON")
			return
		}
		results, err := s.keys.VerifyJSONs(r.Context(), []gomatrixserverlib.VerifyJSONRequest{{
			ServerName:           req.Origin,
			AtTS:                 spec.AsTimestamp(s.now()),
			Message:              signed,
			ValidityCheckingFunc: gomatrixserverlib.StrictValiditySignatureCheck,
		}})
		if err != nil {
			zerolog.Ctx(r.Context()).Error().Err(err).Str("origin", string(req.Origin)).Msg("checking a request signature failed")
			writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Could not check the request signature")
			return
		}
		if results[0].Error != nil {
			s.unauthorized(w, r, req.Origin, "Invalid request signature: "+results[0].Error.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if s.heard != nil {
			s.heard(req.Origin)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), originKey{}, req.Origin)))
	})
}

// parseXMatrix reads the X-Matrix Authorization headers; msg says why
// they do not authenticate anything ("" when they may).
func (s *Server) parseXMatrix(r *http.Request) (req signedRequest, msg string) {
	req = signedRequest{Method: r.Method, URI: r.RequestURI, Destination: s.self.ServerName}
	if req.URI == "" {
		req.URI = r.URL.RequestURI()
	}
	for _, h := range r.Header.Values("Authorization") {
		scheme, origin, destination, keyID, sig := fclient.ParseAuthorization(h)
		if scheme != "X-Matrix" {
			continue
		}
		if origin == "" || keyID == "" || sig == "" {
			return req, "The X-Matrix Authorization header lacks its origin, key or sig"
		}
		if req.Origin != "" && req.Origin != origin {
			return req, "X-Matrix Authorization headers name different origins"
		}
		if _, _, ok := spec.ParseAndValidateServerName(origin); !ok {
			return req, "The X-Matrix origin is not a server name"
		}
		if destination != "" && destination != s.self.ServerName {
			return req, "The X-Matrix destination is not this server"
		}
		req.Origin = origin
		if req.Signatures == nil {
			req.Signatures = map[spec.ServerName]map[gomatrixserverlib.KeyID]string{origin: {}}
		}
		req.Signatures[origin][keyID] = sig
	}
	if req.Origin == "" {
		return req, "Missing X-Matrix Authorization header"
	}
	return req, ""
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, origin spec.ServerName, msg string) {
	zerolog.Ctx(r.Context()).Info().Str("origin", string(origin)).Str("reason", msg).Msg("federation request refused")
	writeError(w, http.StatusUnauthorized, "M_UNAUTHORIZED", msg)
}
