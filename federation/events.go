package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// The Server-Server endpoints that read a room's events for a server in
// the room (or any server, when the room's history is world_readable):
// one event, the state at an event, an auth chain, backfill and missing
// events. Events go out as stored, byte for byte signed JSON, redacted
// when the room redacted them; /event, /backfill and /get_missing_events
// also redact those the history visibility hides from the requester (the
// state and auth chains go out whole: servers need them to check events).

// maxWalk bounds what /backfill and /get_missing_events answer with, and
// how many events they start from (each is read).
const maxWalk = 100

// pduTransaction is the body of /event and /backfill (spec: Transaction).
type pduTransaction struct {
	Origin         spec.ServerName   `json:"origin"`
	OriginServerTS spec.Timestamp    `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
}

// pduJSON is an event as it goes to other servers: its stored signed JSON,
// or its redacted form when the room applied a redaction to it (the
// signatures cover that form; the hashes still check the original).
func pduJSON(v gomatrixserverlib.IRoomVersion, ev *persistence.StoredEvent) (json.RawMessage, error) {
	if ev.RedactedBy == "" {
		return ev.JSON, nil
	}
	red, err := v.RedactEventJSON(ev.JSON)
	if err != nil {
		return nil, fmt.Errorf("redacting %s: %w", ev.EventID, err)
	}
	return red, nil
}

// writePDUs writes body as JSON without escaping '<', '>' and '&' in the
// events (json.Marshal would rewrite them inside a json.RawMessage).
func writePDUs(w http.ResponseWriter, body any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Internal error")
		return
	}
	writeRawJSON(w, http.StatusOK, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// loader returns the dagLoader of a room: events of other rooms read as
// unknown. Each event is read and parsed once per request; known events
// (the room's, already read) are not read again.
func (s *Server) loader(room *roomView, known ...*dagEvent) dagLoader {
	cache := make(map[string]*dagEvent, len(known))
	for _, ev := range known {
		cache[ev.ID] = ev
	}
	return func(ctx context.Context, id string) (*dagEvent, error) {
		if ev, ok := cache[id]; ok {
			return ev, nil
		}
		if !validEventID(id) {
			return nil, nil
		}
		se, err := s.roomEvents.EventByID(ctx, id)
		if errors.Is(err, persistence.ErrNotFound) {
			cache[id] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if se.RoomID != room.id {
			cache[id] = nil
			return nil, nil
		}
		ev, err := toDAGEvent(room.version, se)
		if err != nil {
			return nil, err
		}
		cache[id] = ev
		return ev, nil
	}
}

// toDAGEvent parses a stored event for its prev and auth events.
func toDAGEvent(v gomatrixserverlib.IRoomVersion, se *persistence.StoredEvent) (*dagEvent, error) {
	pdu, err := v.NewEventFromTrustedJSONWithEventID(se.EventID, se.JSON, false)
	if err != nil {
		return nil, fmt.Errorf("parsing stored event %s: %w", se.EventID, err)
	}
	return &dagEvent{ID: se.EventID, Depth: se.Depth, Stream: se.StreamPos, Prev: pdu.PrevEventIDs(), Auth: pdu.AuthEventIDs(), Stored: se}, nil
}

// pdus turns walked events into their JSON for the answer.
func pdus(room *roomView, evs []*dagEvent) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(evs))
	for _, ev := range evs {
		j, err := pduJSON(room.version, ev.Stored)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

func dagEventIDs(evs []*dagEvent) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// GET /_matrix/federation/v1/event/{eventId}: one event, as a transaction
// of one PDU, redacted when the origin may not see it.
func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	eventID, ferr := eventIDParam(r, "eventId")
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	ev, err := s.roomEvents.EventByID(r.Context(), eventID)
	if errors.Is(err, persistence.ErrNotFound) {
		writeFedError(w, r, errNotFound("Unknown event"))
		return
	}
	if err != nil {
		writeFedError(w, r, errInternal("read the event", err))
		return
	}
	room, ferr := s.openRoom(r.Context(), OriginFrom(r.Context()), ev.RoomID)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	j, err := s.historyFilter(room, OriginFrom(r.Context())).pdu(r.Context(), ev)
	if err != nil {
		writeFedError(w, r, errInternal("read the event", err))
		return
	}
	writePDUs(w, pduTransaction{Origin: s.self.ServerName, OriginServerTS: spec.AsTimestamp(s.now()), PDUs: []json.RawMessage{j}})
}

// roomEvent reads the room of the path, checks the origin may read it,
// and finds the event (a query or path parameter) in it: 404 for an
// unknown event or one of another room.
func (s *Server) roomEvent(r *http.Request, eventID string) (*roomView, *dagEvent, *fedError) {
	roomID, ferr := roomIDParam(r)
	if ferr != nil {
		return nil, nil, ferr
	}
	if eventID == "" {
		return nil, nil, &fedError{status: http.StatusBadRequest, code: "M_MISSING_PARAM", msg: "event_id is required"}
	}
	if !validEventID(eventID) {
		return nil, nil, errInvalidParam("Malformed event ID")
	}
	room, ferr := s.openRoom(r.Context(), OriginFrom(r.Context()), roomID)
	if ferr != nil {
		return nil, nil, ferr
	}
	ev, err := s.loader(room)(r.Context(), eventID)
	if err != nil {
		return nil, nil, errInternal("read the event", err)
	}
	if ev == nil {
		return nil, nil, errNotFound("Unknown event in this room")
	}
	return room, ev, nil
}

// stateAt is the state before ev and its auth chain.
func (s *Server) stateAt(ctx context.Context, room *roomView, ev *dagEvent) (state, chain []*dagEvent, ferr *fedError) {
	if ev.Stream < 0 {
		// An outlier: stored for its own sake, its state never computed.
		return nil, nil, errNotFound("The state at this event is not known here")
	}
	stored, err := s.roomEvents.SnapshotEvents(ctx, ev.Stored.StateBefore)
	if err != nil {
		return nil, nil, errInternal("read the state", err)
	}
	state = make([]*dagEvent, 0, len(stored))
	for i := range stored {
		de, err := toDAGEvent(room.version, &stored[i])
		if err != nil {
			return nil, nil, errInternal("read the state", err)
		}
		state = append(state, de)
	}
	// Most auth events of the state are in it (create, power levels, join
	// rules, mostly the senders' memberships): take them from there.
	chain, err = walkAuthChain(ctx, s.loader(room, state...), state)
	if err != nil {
		return nil, nil, errInternal("read the auth chain", err)
	}
	return state, chain, nil
}

// GET /_matrix/federation/v1/state_ids/{roomId}?event_id=: the IDs of the
// state before the event and of its auth chain.
func (s *Server) getStateIDs(w http.ResponseWriter, r *http.Request) { s.serveStateAt(w, r, true) }

// GET /_matrix/federation/v1/state/{roomId}?event_id=: the state before
// the event and its auth chain, as events.
func (s *Server) getState(w http.ResponseWriter, r *http.Request) { s.serveStateAt(w, r, false) }

// serveStateAt answers /state (events) or /state_ids (only their IDs).
func (s *Server) serveStateAt(w http.ResponseWriter, r *http.Request, onlyIDs bool) {
	room, ev, ferr := s.roomEvent(r, r.URL.Query().Get("event_id"))
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	state, chain, ferr := s.stateAt(r.Context(), room, ev)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	if onlyIDs {
		writeJSON(w, http.StatusOK, map[string][]string{"pdu_ids": dagEventIDs(state), "auth_chain_ids": dagEventIDs(chain)})
		return
	}
	statePDUs, err := pdus(room, state)
	if err != nil {
		writeFedError(w, r, errInternal("read the state", err))
		return
	}
	chainPDUs, err := pdus(room, chain)
	if err != nil {
		writeFedError(w, r, errInternal("read the auth chain", err))
		return
	}
	writePDUs(w, map[string][]json.RawMessage{"pdus": statePDUs, "auth_chain": chainPDUs})
}

// GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}: the event's
// full auth chain.
func (s *Server) getEventAuth(w http.ResponseWriter, r *http.Request) {
	eventID, ferr := eventIDParam(r, "eventId")
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	room, ev, ferr := s.roomEvent(r, eventID)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	chain, err := walkAuthChain(r.Context(), s.loader(room), []*dagEvent{ev})
	if err != nil {
		writeFedError(w, r, errInternal("read the auth chain", err))
		return
	}
	out, err := pdus(room, chain)
	if err != nil {
		writeFedError(w, r, errInternal("read the auth chain", err))
		return
	}
	writePDUs(w, map[string][]json.RawMessage{"auth_chain": out})
}

// GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=: the v events and
// those before them, up to limit (at most maxWalk), deepest first.
func (s *Server) getBackfill(w http.ResponseWriter, r *http.Request) {
	roomID, ferr := roomIDParam(r)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	q := r.URL.Query()
	// gomatrixserverlib sends v once per event; the spec's OpenAPI has a
	// comma-separated list. Take both.
	var from []string
	for _, v := range q["v"] {
		for _, id := range strings.Split(v, ",") {
			if id == "" {
				continue
			}
			if !validEventID(id) {
				writeFedError(w, r, errInvalidParam("Malformed event ID in v"))
				return
			}
			from = append(from, id)
		}
	}
	if len(from) == 0 {
		writeError(w, http.StatusBadRequest, "M_MISSING_PARAM", "v is required")
		return
	}
	if len(from) > maxWalk {
		writeFedError(w, r, errInvalidParam(fmt.Sprintf("At most %d events in v", maxWalk)))
		return
	}
	if !q.Has("limit") {
		writeError(w, http.StatusBadRequest, "M_MISSING_PARAM", "limit is required")
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 0 {
		writeFedError(w, r, errInvalidParam("limit must be a non-negative integer"))
		return
	}
	limit = min(limit, maxWalk)
	room, ferr := s.openRoom(r.Context(), OriginFrom(r.Context()), roomID)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	evs, err := walkBackfill(r.Context(), s.loader(room), from, limit)
	if err != nil {
		writeFedError(w, r, errInternal("read the room's events", err))
		return
	}
	out, err := s.historyFilter(room, OriginFrom(r.Context())).filteredPDUs(r.Context(), evs)
	if err != nil {
		writeFedError(w, r, errInternal("read the room's events", err))
		return
	}
	writePDUs(w, pduTransaction{Origin: s.self.ServerName, OriginServerTS: spec.AsTimestamp(s.now()), PDUs: out})
}

// missingEventsRequest is the body of /get_missing_events.
type missingEventsRequest struct {
	Limit          *int     `json:"limit"`
	MinDepth       int64    `json:"min_depth"`
	EarliestEvents []string `json:"earliest_events"`
	LatestEvents   []string `json:"latest_events"`
}

// POST /_matrix/federation/v1/get_missing_events/{roomId}: the events
// before latest_events down to earliest_events, oldest first.
func (s *Server) postGetMissingEvents(w http.ResponseWriter, r *http.Request) {
	roomID, ferr := roomIDParam(r)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	var req missingEventsRequest
	body, _ := io.ReadAll(r.Body) // the X-Matrix middleware read it whole
	if len(body) == 0 {
		writeError(w, http.StatusBadRequest, "M_NOT_JSON", "The request body is not JSON")
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The body is not a get_missing_events request: "+err.Error())
		return
	}
	if req.EarliestEvents == nil || req.LatestEvents == nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "earliest_events and latest_events are required")
		return
	}
	if len(req.LatestEvents) > maxWalk {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", fmt.Sprintf("At most %d latest_events", maxWalk))
		return
	}
	limit := 10
	if req.Limit != nil {
		limit = *req.Limit
	}
	if limit < 0 {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "limit must not be negative")
		return
	}
	limit = min(limit, maxWalk)
	room, ferr := s.openRoom(r.Context(), OriginFrom(r.Context()), roomID)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	evs, err := walkMissing(r.Context(), s.loader(room), req.EarliestEvents, req.LatestEvents, limit, req.MinDepth)
	if err != nil {
		writeFedError(w, r, errInternal("read the room's events", err))
		return
	}
	out, err := s.historyFilter(room, OriginFrom(r.Context())).filteredPDUs(r.Context(), evs)
	if err != nil {
		writeFedError(w, r, errInternal("read the room's events", err))
		return
	}
	writePDUs(w, map[string][]json.RawMessage{"events": out})
}
