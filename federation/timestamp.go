package federation

import (
	"net/http"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=: the
// room's event closest to ts, at or after it (dir f) or at or before it
// (dir b), for a server that may read the room.
func (s *Server) getTimestampToEvent(w http.ResponseWriter, r *http.Request) {
	roomID, ferr := roomIDParam(r)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	q := r.URL.Query()
	if q.Get("ts") == "" || q.Get("dir") == "" {
		writeError(w, http.StatusBadRequest, "M_MISSING_PARAM", "ts and dir are required")
		return
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		writeFedError(w, r, errInvalidParam("ts must be an integer"))
		return
	}
	dir := q.Get("dir")
	if dir != "f" && dir != "b" {
		writeFedError(w, r, errInvalidParam("dir must be f or b"))
		return
	}
	room, ferr := s.openRoom(r.Context(), OriginFrom(r.Context()), roomID)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	bound, err := s.roomEvents.MaxStreamPos(r.Context())
	if err != nil {
		writeFedError(w, r, errInternal("read the room's events", err))
		return
	}
	evs, err := s.roomEvents.EventsNearTimestamp(r.Context(), room.nid, ts, dir == "f", bound, 1)
	if err != nil {
		writeFedError(w, r, errInternal("read the room's events", err))
		return
	}
	if len(evs) == 0 {
		writeFedError(w, r, errNotFound("No event found in that direction"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"event_id": evs[0].EventID, "origin_server_ts": spec.Timestamp(evs[0].OriginServerTS)})
}
