package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/persistence"
)

// RoomEventReader is what the endpoints that read a room's events for
// other servers need of storage: the join endpoints' reads, and those
// the access rules need.
type RoomEventReader interface {
	RoomEvents
	// CurrentStateEvent returns persistence.ErrNotFound when the room has
	// no such state.
	CurrentStateEvent(ctx context.Context, room persistence.RoomNID, eventType, stateKey string) (*persistence.StoredEvent, error)
	// RoomMemberships returns every membership row of a room.
	RoomMemberships(ctx context.Context, room persistence.RoomNID) ([]persistence.Membership, error)
	// ServerJoined says whether a user of serverName is joined to the
	// room now.
	ServerJoined(ctx context.Context, room persistence.RoomNID, serverName string) (bool, error)
	// StateEventAt returns the state event for (type, stateKey) in a
	// snapshot, or persistence.ErrNotFound.
	StateEventAt(ctx context.Context, snapshot persistence.StateSnapshotNID, eventType, stateKey string) (*persistence.StoredEvent, error)
	// EventsNearTimestamp and MaxStreamPos answer /timestamp_to_event.
	EventsNearTimestamp(ctx context.Context, room persistence.RoomNID, ts int64, forward bool, to persistence.StreamPos, limit int) ([]persistence.StoredEvent, error)
	MaxStreamPos(ctx context.Context) (persistence.StreamPos, error)
}

// fedError is a Matrix error a handler answers with.
type fedError struct {
	status int
	code   string
	msg    string
	err    error // the cause of a 500, logged, never shown
}

func (e *fedError) Error() string { return e.code + ": " + e.msg }

func errNotFound(msg string) *fedError {
	return &fedError{status: http.StatusNotFound, code: "M_NOT_FOUND", msg: msg}
}
func errForbidden(msg string) *fedError {
	return &fedError{status: http.StatusForbidden, code: "M_FORBIDDEN", msg: msg}
}
func errInvalidParam(msg string) *fedError {
	return &fedError{status: http.StatusBadRequest, code: "M_INVALID_PARAM", msg: msg}
}
func errInternal(what string, err error) *fedError {
	return &fedError{status: http.StatusInternalServerError, code: "M_UNKNOWN", msg: "Could not " + what, err: err}
}

func writeFedError(w http.ResponseWriter, r *http.Request, e *fedError) {
	if e.err != nil {
		zerolog.Ctx(r.Context()).Error().Err(e.err).Msg(e.msg)
	}
	writeError(w, e.status, e.code, e.msg)
}

// urlParam returns a path parameter decoded. chi matches on the escaped
// path (RawPath) whenever the requester escaped more than Go would (the
// '!', ':' and '$' of Matrix IDs, the '/' and '+' of room version 3 event
// IDs); its parameters are then still escaped.
func urlParam(r *http.Request, name string) (string, bool) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, true
	}
	u, err := url.PathUnescape(v)
	return u, err == nil
}

// roomIDParam is the {roomId} of the path, checked to be a room ID.
func roomIDParam(r *http.Request) (string, *fedError) {
	id, ok := urlParam(r, "roomId")
	if !ok {
		return "", errInvalidParam("Malformed room ID")
	}
	if _, err := spec.NewRoomID(id); err != nil {
		return "", errInvalidParam("Malformed room ID")
	}
	return id, nil
}

// validEventID says whether id has the form of an event ID.
func validEventID(id string) bool {
	return len(id) > 1 && len(id) <= 255 && id[0] == '$'
}

// eventIDParam is a path parameter checked to be an event ID.
func eventIDParam(r *http.Request, name string) (string, *fedError) {
	id, ok := urlParam(r, name)
	if !ok || !validEventID(id) {
		return "", errInvalidParam("Malformed event ID")
	}
	return id, nil
}

// roomView is a room as one requesting server may read it.
type roomView struct {
	id      string
	nid     persistence.RoomNID
	version gomatrixserverlib.IRoomVersion
}

// openRoom finds the room and checks that origin may read its events:
// one of its users is joined to the room now, or the room's history is
// world_readable; and the room's server ACL must not deny it. Unknown
// rooms are 404, a refusal is 403.
//
// This is the room-wide rule; /event, /backfill and /get_missing_events
// then redact the events the origin may not see (historyFilter).
func (s *Server) openRoom(ctx context.Context, origin spec.ServerName, roomID string) (*roomView, *fedError) {
	nid, version, err := s.roomEvents.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, errNotFound("Unknown room")
	}
	if err != nil {
		return nil, errInternal("read the room", err)
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil {
		return nil, errInternal("read the room", fmt.Errorf("room %s: %w", roomID, err))
	}
	room := &roomView{id: roomID, nid: nid, version: v}
	allowed, err := s.aclAllows(ctx, room, origin)
	if err != nil {
		return nil, errInternal("read the room's server ACL", err)
	}
	if !allowed {
		return nil, errForbidden("The room's server ACL denies " + string(origin))
	}
	joined, err := s.roomEvents.ServerJoined(ctx, nid, string(origin))
	if err != nil {
		return nil, errInternal("read the room's members", err)
	}
	if joined {
		return room, nil
	}
	readable, err := s.worldReadable(ctx, v, nid)
	if err != nil {
		return nil, errInternal("read the room's history visibility", err)
	}
	if !readable {
		return nil, errForbidden("The server " + string(origin) + " is not in the room")
	}
	return room, nil
}

// aclAllows applies the room's current server ACL, if any, to server.
func (s *Server) aclAllows(ctx context.Context, room *roomView, server spec.ServerName) (bool, error) {
	ev, err := s.roomEvents.CurrentStateEvent(ctx, room.nid, "m.room.server_acl", "")
	if errors.Is(err, persistence.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	j, err := pduJSON(room.version, ev) // redacted, it allows nobody
	if err != nil {
		return false, err
	}
	var c struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(j, &c); err != nil {
		return false, fmt.Errorf("event %s: %w", ev.EventID, err)
	}
	return parseServerACL(c.Content).Allows(server), nil
}

// worldReadable says whether the room's current history visibility is
// world_readable.
func (s *Server) worldReadable(ctx context.Context, v gomatrixserverlib.IRoomVersion, room persistence.RoomNID) (bool, error) {
	ev, err := s.roomEvents.CurrentStateEvent(ctx, room, spec.MRoomHistoryVisibility, "")
	if errors.Is(err, persistence.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	j, err := pduJSON(v, ev) // redaction keeps history_visibility
	if err != nil {
		return false, err
	}
	var c struct {
		Content struct {
			HistoryVisibility any `json:"history_visibility"`
		} `json:"content"`
	}
	if err := json.Unmarshal(j, &c); err != nil {
		return false, fmt.Errorf("event %s: %w", ev.EventID, err)
	}
	return c.Content.HistoryVisibility == "world_readable", nil
}
