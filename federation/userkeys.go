package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/e2ekeys"
	"github.com/soma-chat/soma/persistence"
)

// Inbound queries about local users' devices and end-to-end keys, answered
// from storage by e2ekeys as the Client-Server API answers local users.
// Each refuses user IDs of other servers: a server speaks for its own.

// UserKeyStore is what the device and key queries read of storage.
type UserKeyStore interface {
	e2ekeys.Store
	LatestDeviceListChange(ctx context.Context, userID string) (persistence.StreamPos, error)
}

// readJSONBody decodes a request's JSON object body (the X-Matrix
// middleware checked it is JSON) and answers 400 M_BAD_JSON when it does
// not fit v.
func readJSONBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The request body does not fit: "+err.Error())
		return false
	}
	return true
}

// localUser checks that userID is a user ID of this server, answering
// 400 M_INVALID_PARAM otherwise.
func (s *Server) localUser(w http.ResponseWriter, userID string) (spec.UserID, bool) {
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "Not a user ID: "+userID)
		return spec.UserID{}, false
	}
	if uid.Domain() != s.self.ServerName {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "The user "+userID+" is not hosted on this server")
		return spec.UserID{}, false
	}
	return *uid, true
}

// userDevice is one device of GET /user/devices.
type userDevice struct {
	DeviceID    string          `json:"device_id"`
	Keys        json.RawMessage `json:"keys"`
	DisplayName string          `json:"device_display_name,omitempty"`
}

// GET /_matrix/federation/v1/user/devices/{userId}: the user's devices
// that have identity keys, the device list's version (stream_id, the
// position of its latest change) and the user's master and self-signing
// keys.
func (s *Server) getUserDevices(w http.ResponseWriter, r *http.Request) {
	userID, err := url.PathUnescape(chi.URLParam(r, "userId"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "Malformed user ID")
		return
	}
	uid, ok := s.localUser(w, userID)
	if !ok {
		return
	}
	ctx := r.Context()
	if _, err := s.profiles.GetProfile(ctx, uid.Local()); errors.Is(err, persistence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "No such user")
		return
	} else if err != nil {
		s.internalError(w, r, err, "reading a profile failed")
		return
	}
	streamID, err := s.userKeys.LatestDeviceListChange(ctx, userID)
	if err != nil {
		s.internalError(w, r, err, "reading the device list version failed")
		return
	}
	devices, err := s.userKeys.ListDevices(ctx, uid.Local())
	if err != nil {
		s.internalError(w, r, err, "listing devices failed")
		return
	}
	q := e2ekeys.NewQuery("")
	if err := q.AddUser(ctx, s.userKeys, userID, nil); err != nil {
		s.internalError(w, r, err, "reading device keys failed")
		return
	}
	out := []userDevice{}
	for _, d := range devices {
		if keys, ok := q.DeviceKeys[userID][d.DeviceID]; ok {
			out = append(out, userDevice{DeviceID: d.DeviceID, Keys: keys, DisplayName: d.DisplayName})
		}
	}
	body := map[string]any{"user_id": userID, "stream_id": streamID, "devices": out}
	if k, ok := q.Master[userID]; ok {
		body["master_key"] = k
	}
	if k, ok := q.SelfSigning[userID]; ok {
		body["self_signing_key"] = k
	}
	writeJSON(w, http.StatusOK, body)
}

// POST /_matrix/federation/v1/user/keys/query {device_keys}: the
// devices' identity keys and the users' master and self-signing keys.
// Master keys carry only their owner's signatures: whom a user verified
// is not for other servers to know.
func (s *Server) queryUserKeys(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if !readJSONBody(w, r, &req) {
		return
	}
	if req.DeviceKeys == nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "device_keys is required")
		return
	}
	users := make([]string, 0, len(req.DeviceKeys))
	for userID := range req.DeviceKeys {
		if _, ok := s.localUser(w, userID); !ok {
			return
		}
		users = append(users, userID)
	}
	slices.Sort(users)
	q := e2ekeys.NewQuery("")
	for _, userID := range users {
		if err := q.AddUser(r.Context(), s.userKeys, userID, req.DeviceKeys[userID]); err != nil {
			s.internalError(w, r, err, "reading keys failed")
			return
		}
	}
	writeJSON(w, http.StatusOK, QueriedKeys{DeviceKeys: q.DeviceKeys, MasterKeys: q.Master, SelfSigningKeys: q.SelfSigning})
}

// POST /_matrix/federation/v1/user/keys/claim {one_time_keys}: one key
// per device, a one-time key while the device has one, else its fallback
// key.
func (s *Server) claimUserKeys(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if !readJSONBody(w, r, &req) {
		return
	}
	if req.OneTimeKeys == nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "one_time_keys is required")
		return
	}
	for userID := range req.OneTimeKeys {
		if _, ok := s.localUser(w, userID); !ok {
			return
		}
	}
	out := e2ekeys.Claimed{}
	for userID, devices := range req.OneTimeKeys {
		if err := out.Claim(r.Context(), s.userKeys, userID, devices); err != nil {
			s.internalError(w, r, err, "claiming keys failed")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"one_time_keys": out})
}
