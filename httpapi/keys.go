package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/e2ekeys"
	"github.com/soma-chat/soma/persistence"
)

// End-to-end encryption keys: devices upload their identity, one-time and
// fallback keys; others query identity keys and claim one-time keys to
// start Olm sessions. Remote users' keys are asked of their servers.

func (s *Server) keysRoutes(r chi.Router) {
	r.Post("/keys/upload", s.serve(s.authed(s.uploadKeys)))
	r.Post("/keys/query", s.serve(s.authed(s.queryKeys)))
	r.Post("/keys/claim", s.serve(s.authed(s.claimKeys)))
	r.Get("/keys/changes", s.serve(s.authed(s.keyChanges)))
	r.Put("/sendToDevice/{eventType}/{txnId}", s.serve(s.authed(s.sendToDevice)))
	s.crossSigningRoutes(r)
	s.keyBackupRoutes(r)
}

type uploadKeysRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceKeysHeader is what the server checks of uploaded identity keys.
type deviceKeysHeader struct {
	UserID     string            `json:"user_id"`
	DeviceID   string            `json:"device_id"`
	Algorithms []string          `json:"algorithms"`
	Keys       map[string]string `json:"keys"`
	Signatures map[string]any    `json:"signatures"`
}

// uploadKeys: POST /keys/upload.
func (s *Server) uploadKeys(r *http.Request) (int, any, error) {
	var req uploadKeysRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	ctx := r.Context()
	otks, err := parseKeyMap(req.OneTimeKeys, "one_time_keys")
	if err != nil {
		return 0, nil, err
	}
	fallbacks, err := parseKeyMap(req.FallbackKeys, "fallback_keys")
	if err != nil {
		return 0, nil, err
	}
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		var h deviceKeysHeader
		if err := json.Unmarshal(req.DeviceKeys, &h); err != nil {
			return 0, nil, errBadJSON("device_keys: " + err.Error())
		}
		if h.UserID != c.UserID || h.DeviceID != c.DeviceID {
			return 0, nil, errInvalidParam("device_keys must be this device's: user_id and device_id of the access token")
		}
		if len(h.Algorithms) == 0 || len(h.Keys) == 0 || len(h.Signatures) == 0 {
			return 0, nil, errBadJSON("device_keys needs algorithms, keys and signatures")
		}
		changed, pos, err := s.store.PutDeviceKeys(ctx, c.UserID, c.DeviceID, req.DeviceKeys)
		if err != nil {
			return 0, nil, err
		}
		if changed {
			if err := s.publishDeviceListChange(ctx, c.UserID, pos); err != nil {
				return 0, nil, err
			}
			s.federateDevices(ctx, c.UserID, pos, c.DeviceID)
		}
	}
	if len(otks) > 0 {
		if err := s.store.AddOneTimeKeys(ctx, c.UserID, c.DeviceID, otks); err != nil {
			return 0, nil, err
		}
	}
	if len(fallbacks) > 0 {
		if err := s.store.SetFallbackKeys(ctx, c.UserID, c.DeviceID, fallbacks); err != nil {
			return 0, nil, err
		}
	}
	counts, err := s.oneTimeKeyCounts(ctx, c.UserID, c.DeviceID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"one_time_key_counts": counts}, nil
}

// parseKeyMap reads {"algorithm:key_id": key} maps.
func parseKeyMap(m map[string]json.RawMessage, field string) ([]persistence.OneTimeKey, error) {
	out := make([]persistence.OneTimeKey, 0, len(m))
	for id, key := range m {
		alg, keyID, ok := strings.Cut(id, ":")
		if !ok || alg == "" || keyID == "" {
			return nil, errBadJSON(field + ": key IDs are algorithm:key_id, got " + id)
		}
		if len(key) == 0 || string(key) == "null" {
			return nil, errBadJSON(field + ": " + id + " has no key")
		}
		out = append(out, persistence.OneTimeKey{Algorithm: alg, KeyID: keyID, Key: key})
	}
	return out, nil
}

// oneTimeKeyCounts always reports signed_curve25519, which clients read
// to decide whether to upload more.
func (s *Server) oneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	counts, err := s.store.OneTimeKeyCounts(ctx, userID, deviceID)
	if err != nil {
		return nil, err
	}
	if _, ok := counts["signed_curve25519"]; !ok {
		counts["signed_curve25519"] = 0
	}
	return counts, nil
}

// publishDeviceListChange wakes the user's syncs and those of everyone in
// the user's joined rooms, whose next sync lists the user in
// device_lists.changed.
func (s *Server) publishDeviceListChange(ctx context.Context, userID string, pos persistence.StreamPos) error {
	ms, err := s.store.MembershipsForUser(ctx, userID)
	if err != nil {
		return err
	}
	s.publish(&messages.RoomAdvanced{StreamPos: int64(pos), Users: []string{userID}})
	for _, m := range ms {
		if m.Membership == "join" {
			s.publish(&messages.RoomAdvanced{RoomId: m.RoomID, StreamPos: int64(pos)})
		}
	}
	return nil
}

type queryKeysRequest struct {
	DeviceKeys map[string][]string `json:"device_keys"`
	// Timeout is how long to wait for other servers, in milliseconds.
	Timeout *int64 `json:"timeout"`
}

// queryKeys: POST /keys/query. Local users' keys come from storage
// (e2ekeys, with their cross-signing keys and the signatures the caller
// may see); remote users' keys are asked of their servers (remotekeys.go).
func (s *Server) queryKeys(r *http.Request) (int, any, error) {
	var req queryKeysRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	q := e2ekeys.NewQuery(callerFrom(r.Context()).UserID)
	remote := map[string]map[string][]string{}
	for userID, devices := range req.DeviceKeys {
		if !s.isLocalUser(userID) {
			if server := serverOfUser(userID); server != "" {
				if remote[server] == nil {
					remote[server] = map[string][]string{}
				}
				remote[server][userID] = devices
			}
			continue
		}
		if err := q.AddUser(r.Context(), s.store, userID, devices); err != nil {
			return 0, nil, err
		}
	}
	failures := s.queryRemoteKeys(r.Context(), remoteTimeout(req.Timeout), remote, q)
	return http.StatusOK, map[string]any{
		"device_keys": q.DeviceKeys, "failures": failures,
		"master_keys": q.Master, "self_signing_keys": q.SelfSigning, "user_signing_keys": q.UserSigning,
	}, nil
}

type claimKeysRequest struct {
	OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	// Timeout is how long to wait for other servers, in milliseconds.
	Timeout *int64 `json:"timeout"`
}

// claimKeys: POST /keys/claim: a one-time key per device, else its
// fallback key; remote users' are claimed from their servers.
func (s *Server) claimKeys(r *http.Request) (int, any, error) {
	var req claimKeysRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	out := e2ekeys.Claimed{}
	remote := map[string]map[string]map[string]string{}
	for userID, devices := range req.OneTimeKeys {
		if !s.isLocalUser(userID) {
			if server := serverOfUser(userID); server != "" {
				if remote[server] == nil {
					remote[server] = map[string]map[string]string{}
				}
				remote[server][userID] = devices
			}
			continue
		}
		if err := out.Claim(r.Context(), s.store, userID, devices); err != nil {
			return 0, nil, err
		}
	}
	failures := s.claimRemoteKeys(r.Context(), remoteTimeout(req.Timeout), remote, out)
	return http.StatusOK, map[string]any{"one_time_keys": out, "failures": failures}, nil
}

// keyChanges: GET /keys/changes?from=&to=, tokens from /sync.
func (s *Server) keyChanges(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	if q.Get("from") == "" || q.Get("to") == "" {
		return 0, nil, errMissingParam("from and to are required")
	}
	from, _, err := parseSyncToken(q.Get("from"))
	if err != nil {
		return 0, nil, err
	}
	to, _, err := parseSyncToken(q.Get("to"))
	if err != nil {
		return 0, nil, err
	}
	changed, err := s.store.DeviceListChangesBetween(r.Context(), callerFrom(r.Context()).UserID, from, to)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"changed": changed, "left": []string{}}, nil
}

func (s *Server) isLocalUser(userID string) bool {
	return strings.HasPrefix(userID, "@") && serverOfUser(userID) == s.opts.ServerName
}

func serverOfUser(userID string) string {
	_, server, _ := strings.Cut(userID, ":")
	return server
}
