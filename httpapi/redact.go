package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Redactions: PUT /rooms/{roomId}/redact/{eventId}/{txnId} asks the room to
// redact an event (the room decides whether the caller may); reads show a
// redacted event's content pruned per its room version, with the redaction
// in unsigned.redacted_because.

// redactHandler: PUT /rooms/{roomId}/redact/{eventId}/{txnId} with
// {"reason"}.
func (s *Server) redactHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	body, err := readJSONObject(r)
	if err != nil {
		return 0, nil, err
	}
	eventID, err := urlParam(r, "eventId")
	if err != nil {
		return 0, nil, err
	}
	id, err := s.sendEvent(r.Context(), pathParam(r, "roomId"), c.DeviceID, pathParam(r, "txnId"),
		&messages.EventContent{Sender: c.UserID, Type: "m.room.redaction", Content: body, Redacts: eventID})
	if err != nil {
		return 0, nil, err
	}
	logEventID(r.Context(), id)
	return http.StatusOK, map[string]string{"event_id": id}, nil
}

// redactedFields returns the fields of a redacted event as clients see
// them, and its redaction as unsigned.redacted_because.
func redactedFields(ev *persistence.StoredEvent) (pduFields, *clientEvent, error) {
	var f pduFields
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(ev.RoomVersion))
	if err != nil {
		return f, nil, fmt.Errorf("httpapi: event %s: %w", ev.EventID, err)
	}
	pruned, err := v.RedactEventJSON(ev.JSON)
	if err != nil {
		return f, nil, fmt.Errorf("httpapi: redacting %s: %w", ev.EventID, err)
	}
	if err := json.Unmarshal(pruned, &f); err != nil {
		return f, nil, fmt.Errorf("httpapi: redacted %s: %w", ev.EventID, err)
	}
	var red struct {
		pduFields
		Sender         string `json:"sender"`
		OriginServerTS int64  `json:"origin_server_ts"`
	}
	if err := json.Unmarshal(ev.Redaction, &red); err != nil {
		return f, nil, fmt.Errorf("httpapi: redaction of %s: %w", ev.EventID, err)
	}
	because := &clientEvent{
		Content: red.Content, EventID: ev.RedactedBy, OriginServerTS: red.OriginServerTS,
		RoomID: ev.RoomID, Sender: red.Sender, Type: "m.room.redaction", Redacts: ev.EventID,
	}
	if because.Content == nil {
		because.Content = json.RawMessage("{}")
	}
	return f, because, nil
}
