package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/persistence"
)

// Server-side key backup: a user's clients keep the room keys of their
// megolm sessions, encrypted, in backup versions on the server. Keys are
// written only to the current (newest) version; a session's key is
// replaced only by a better one (persistence.KeyBackupSession.Better).

func (s *Server) keyBackupRoutes(r chi.Router) {
	r.Post("/room_keys/version", s.serve(s.authed(s.createKeyBackupVersion)))
	r.Get("/room_keys/version", s.serve(s.authed(s.getKeyBackupVersion)))
	r.Get("/room_keys/version/{version}", s.serve(s.authed(s.getKeyBackupVersion)))
	r.Put("/room_keys/version/{version}", s.serve(s.authed(s.updateKeyBackupVersion)))
	r.Delete("/room_keys/version/{version}", s.serve(s.authed(s.deleteKeyBackupVersion)))
	for _, path := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		r.Put(path, s.serve(s.authed(s.putRoomKeys)))
		r.Get(path, s.serve(s.authed(s.getRoomKeys)))
		r.Delete(path, s.serve(s.authed(s.deleteRoomKeys)))
	}
}

// keyBackupVersionRequest is the body of creating and updating a version.
type keyBackupVersionRequest struct {
	Algorithm *string         `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   *string         `json:"version"`
}

func (req *keyBackupVersionRequest) check() error {
	if req.Algorithm == nil || *req.Algorithm == "" {
		return errMissingParam("algorithm is required")
	}
	if !present(req.AuthData) {
		return errMissingParam("auth_data is required")
	}
	if req.AuthData[0] != '{' {
		return errBadJSON("auth_data must be an object")
	}
	return nil
}

// createKeyBackupVersion: POST /room_keys/version.
func (s *Server) createKeyBackupVersion(r *http.Request) (int, any, error) {
	var req keyBackupVersionRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if err := req.check(); err != nil {
		return 0, nil, err
	}
	v, err := s.store.CreateKeyBackupVersion(r.Context(), callerFrom(r.Context()).UserID, *req.Algorithm, req.AuthData)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"version": v}, nil
}

// getKeyBackupVersion: GET /room_keys/version (the current one) and GET
// /room_keys/version/{version}.
func (s *Server) getKeyBackupVersion(r *http.Request) (int, any, error) {
	version := pathParam(r, "version")
	v, err := s.store.KeyBackupVersion(r.Context(), callerFrom(r.Context()).UserID, version)
	if errors.Is(err, persistence.ErrNotFound) {
		if version == "" {
			return 0, nil, errNotFound("No current backup version")
		}
		return 0, nil, errNotFound("Unknown backup version")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{
		"algorithm": v.Algorithm, "auth_data": v.AuthData, "count": v.Count, "etag": v.Etag, "version": v.Version,
	}, nil
}

// updateKeyBackupVersion: PUT /room_keys/version/{version}; only auth_data
// changes.
func (s *Server) updateKeyBackupVersion(r *http.Request) (int, any, error) {
	version := pathParam(r, "version")
	var req keyBackupVersionRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if err := req.check(); err != nil {
		return 0, nil, err
	}
	if req.Version != nil && *req.Version != version {
		return 0, nil, errInvalidParam("The version in the body is not the version in the path")
	}
	userID := callerFrom(r.Context()).UserID
	v, err := s.store.KeyBackupVersion(r.Context(), userID, version)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Unknown backup version")
	}
	if err != nil {
		return 0, nil, err
	}
	if *req.Algorithm != v.Algorithm {
		return 0, nil, errInvalidParam("Algorithm does not match")
	}
	err = s.store.UpdateKeyBackupAuthData(r.Context(), userID, version, req.AuthData)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Unknown backup version") // deleted meanwhile
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// deleteKeyBackupVersion: DELETE /room_keys/version/{version}; deleting a
// deleted version succeeds.
func (s *Server) deleteKeyBackupVersion(r *http.Request) (int, any, error) {
	err := s.store.DeleteKeyBackupVersion(r.Context(), callerFrom(r.Context()).UserID, pathParam(r, "version"))
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Unknown backup version")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// keyBackupData is a session's key as clients send and read it.
type keyBackupData struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

func (d *keyBackupData) session(roomID, sessionID string) (persistence.KeyBackupSession, error) {
	what := "the key of session " + sessionID + " in " + roomID
	if d.FirstMessageIndex == nil || d.ForwardedCount == nil || d.IsVerified == nil || !present(d.SessionData) {
		return persistence.KeyBackupSession{}, errBadJSON(what + " needs first_message_index, forwarded_count, is_verified and session_data")
	}
	if *d.FirstMessageIndex < 0 || *d.ForwardedCount < 0 {
		return persistence.KeyBackupSession{}, errBadJSON(what + ": first_message_index and forwarded_count cannot be negative")
	}
	if d.SessionData[0] != '{' {
		return persistence.KeyBackupSession{}, errBadJSON(what + ": session_data must be an object")
	}
	return persistence.KeyBackupSession{
		RoomID: roomID, SessionID: sessionID, FirstMessageIndex: *d.FirstMessageIndex,
		ForwardedCount: *d.ForwardedCount, IsVerified: *d.IsVerified, SessionData: d.SessionData,
	}, nil
}

func toKeyBackupData(k *persistence.KeyBackupSession) keyBackupData {
	return keyBackupData{
		FirstMessageIndex: &k.FirstMessageIndex, ForwardedCount: &k.ForwardedCount,
		IsVerified: &k.IsVerified, SessionData: k.SessionData,
	}
}

// roomKeyBackup is the keys of one room: {"sessions": {sessionId: data}}.
type roomKeyBackup struct {
	Sessions map[string]keyBackupData `json:"sessions"`
}

// roomKeysTarget reads what a /room_keys/keys request names: the version
// (required), and the room and session of the path, "" when absent.
func roomKeysTarget(r *http.Request) (version, roomID, sessionID string, err error) {
	version = r.URL.Query().Get("version")
	if version == "" {
		return "", "", "", errMissingParam("version is required")
	}
	if chi.URLParam(r, "roomId") != "" {
		if roomID, err = urlParam(r, "roomId"); err != nil {
			return "", "", "", err
		}
	}
	if chi.URLParam(r, "sessionId") != "" {
		if sessionID, err = urlParam(r, "sessionId"); err != nil {
			return "", "", "", err
		}
	}
	return version, roomID, sessionID, nil
}

// putRoomKeys: PUT /room_keys/keys[/{roomId}[/{sessionId}]]?version=.
func (s *Server) putRoomKeys(r *http.Request) (int, any, error) {
	version, roomID, sessionID, err := roomKeysTarget(r)
	if err != nil {
		return 0, nil, err
	}
	var sessions []persistence.KeyBackupSession
	addRoom := func(roomID string, room roomKeyBackup) error {
		for id, d := range room.Sessions {
			k, err := d.session(roomID, id)
			if err != nil {
				return err
			}
			sessions = append(sessions, k)
		}
		return nil
	}
	switch {
	case sessionID != "":
		var d keyBackupData
		if err := decodeJSON(r, &d); err != nil {
			return 0, nil, err
		}
		k, err := d.session(roomID, sessionID)
		if err != nil {
			return 0, nil, err
		}
		sessions = append(sessions, k)
	case roomID != "":
		var room roomKeyBackup
		if err := decodeJSON(r, &room); err != nil {
			return 0, nil, err
		}
		if err := addRoom(roomID, room); err != nil {
			return 0, nil, err
		}
	default:
		var all struct {
			Rooms map[string]roomKeyBackup `json:"rooms"`
		}
		if err := decodeJSON(r, &all); err != nil {
			return 0, nil, err
		}
		for id, room := range all.Rooms {
			if err := addRoom(id, room); err != nil {
				return 0, nil, err
			}
		}
	}
	userID := callerFrom(r.Context()).UserID
	etag, count, err := s.store.PutKeyBackupSessions(r.Context(), userID, version, sessions)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return 0, nil, errNotFound("Unknown backup version")
	case errors.Is(err, persistence.ErrWrongKeyBackupVersion):
		current, err := s.store.KeyBackupVersion(r.Context(), userID, "")
		if errors.Is(err, persistence.ErrNotFound) {
			return 0, nil, errNotFound("Unknown backup version") // deleted meanwhile
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusForbidden, map[string]string{
			"errcode": "M_WRONG_ROOM_KEYS_VERSION", "error": "Wrong backup version", "current_version": current.Version,
		}, nil
	case err != nil:
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"etag": etag, "count": count}, nil
}

// getRoomKeys: GET /room_keys/keys[/{roomId}[/{sessionId}]]?version=.
func (s *Server) getRoomKeys(r *http.Request) (int, any, error) {
	version, roomID, sessionID, err := roomKeysTarget(r)
	if err != nil {
		return 0, nil, err
	}
	keys, err := s.store.KeyBackupSessions(r.Context(), callerFrom(r.Context()).UserID, version, roomID, sessionID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Unknown backup version")
	}
	if err != nil {
		return 0, nil, err
	}
	switch {
	case sessionID != "":
		if len(keys) == 0 {
			return 0, nil, errNotFound("No key of this session is backed up")
		}
		return http.StatusOK, toKeyBackupData(&keys[0]), nil
	case roomID != "":
		room := roomKeyBackup{Sessions: map[string]keyBackupData{}}
		for i := range keys {
			room.Sessions[keys[i].SessionID] = toKeyBackupData(&keys[i])
		}
		return http.StatusOK, room, nil
	}
	rooms := map[string]roomKeyBackup{}
	for i := range keys {
		k := &keys[i]
		if rooms[k.RoomID].Sessions == nil {
			rooms[k.RoomID] = roomKeyBackup{Sessions: map[string]keyBackupData{}}
		}
		rooms[k.RoomID].Sessions[k.SessionID] = toKeyBackupData(k)
	}
	return http.StatusOK, map[string]any{"rooms": rooms}, nil
}

// deleteRoomKeys: DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=.
func (s *Server) deleteRoomKeys(r *http.Request) (int, any, error) {
	version, roomID, sessionID, err := roomKeysTarget(r)
	if err != nil {
		return 0, nil, err
	}
	etag, count, err := s.store.DeleteKeyBackupSessions(r.Context(), callerFrom(r.Context()).UserID, version, roomID, sessionID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Unknown backup version")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"etag": etag, "count": count}, nil
}
