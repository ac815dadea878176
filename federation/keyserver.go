package federation

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"
)

// maxNotaryServers bounds the servers one notary query may ask about: each
// may cost a fetch from a remote server.
const maxNotaryServers = 50

// GET /_matrix/key/v2/server: this server's keys, signed by itself.
func (s *Server) getServerKeys(w http.ResponseWriter, r *http.Request) {
	raw, _, err := s.self.SelfKeys(s.now())
	if err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("signing the key response failed")
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Could not sign the key response")
		return
	}
	writeRawJSON(w, http.StatusOK, raw)
}

// GET /_matrix/key/v2/query/{serverName}?minimum_valid_until_ts=
func (s *Server) getKeyQuery(w http.ResponseWriter, r *http.Request) {
	server := spec.ServerName(chi.URLParam(r, "serverName"))
	if _, _, ok := spec.ParseAndValidateServerName(server); !ok {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "Not a server name")
		return
	}
	var minValid spec.Timestamp
	if v := r.URL.Query().Get("minimum_valid_until_ts"); v != "" {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "minimum_valid_until_ts must be a timestamp in milliseconds")
			return
		}
		minValid = spec.Timestamp(n)
	}
	s.answerKeyQuery(w, r, map[spec.ServerName]spec.Timestamp{server: minValid})
}

// keyQueryRequest is the body of POST /_matrix/key/v2/query.
type keyQueryRequest struct {
	ServerKeys map[spec.ServerName]map[string]struct {
		MinimumValidUntilTS spec.Timestamp `json:"minimum_valid_until_ts"`
	} `json:"server_keys"`
}

// POST /_matrix/key/v2/query: several servers' keys at once. The notary
// may return every key of a server whatever key IDs were asked for; it
// asks each server for keys valid until the latest minimum asked.
func (s *Server) postKeyQuery(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&raw); err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			writeError(w, http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "The request body is too large")
			return
		}
		writeError(w, http.StatusBadRequest, "M_NOT_JSON", "The request body is not JSON")
		return
	}
	var body keyQueryRequest
	if err := json.Unmarshal(raw, &body); err != nil || body.ServerKeys == nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "server_keys must be an object of server names to key criteria")
		return
	}
	if len(body.ServerKeys) > maxNotaryServers {
		writeError(w, http.StatusBadRequest, "M_LIMIT_EXCEEDED", "Too many servers in one query (at most "+strconv.Itoa(maxNotaryServers)+")")
		return
	}
	want := map[spec.ServerName]spec.Timestamp{}
	for server, keys := range body.ServerKeys {
		if _, _, ok := spec.ParseAndValidateServerName(server); !ok {
			continue // nothing can be known about it
		}
		var minValid spec.Timestamp
		for _, c := range keys {
			minValid = max(minValid, c.MinimumValidUntilTS)
		}
		want[server] = minValid
	}
	s.answerKeyQuery(w, r, want)
}

// answerKeyQuery writes {"server_keys": [...]}: each server's key response
// countersigned by this server, leaving out servers with no keys known or
// fetchable. The servers are asked at once, so one query waits for the
// slowest fetch (fetchTimeout), not for their sum.
func (s *Server) answerKeyQuery(w http.ResponseWriter, r *http.Request, want map[spec.ServerName]spec.Timestamp) {
	var (
		mu     sync.Mutex
		out    = []json.RawMessage{}
		failed error
		wg     sync.WaitGroup
	)
	for server, minValid := range want {
		wg.Go(func() {
			resp, err := s.keys.KeyResponse(r.Context(), server, minValid)
			if errors.Is(err, ErrNoKeys) {
				return
			}
			if err == nil {
				resp, err = s.self.Countersign(resp)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				zerolog.Ctx(r.Context()).Error().Err(err).Str("server_name", string(server)).Msg("notary key query failed")
				failed = err
				return
			}
			out = append(out, resp)
		})
	}
	wg.Wait()
	if failed != nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Could not read the stored keys")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server_keys": out})
}
