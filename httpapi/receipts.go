package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Receipts (m.read, m.read.private, threaded or not) and read markers
// (m.fully_read, kept as room account data). Receipts are a projection
// beside the room's history, not room state: handlers write them directly
// and wake the syncs of the room's members.

const (
	receiptRead        = "m.read"
	receiptReadPrivate = "m.read.private"
	fullyRead          = "m.fully_read"
)

func (s *Server) receiptRoutes(r chi.Router) {
	r.Post("/rooms/{roomId}/receipt/{receiptType}/{eventId}", s.serve(s.authed(s.postReceipt)))
	r.Post("/rooms/{roomId}/read_markers", s.serve(s.authed(s.postReadMarkers)))
}

type receiptBody struct {
	ThreadID *string `json:"thread_id"`
}

// postReceipt: POST /rooms/{roomId}/receipt/{receiptType}/{eventId}.
func (s *Server) postReceipt(r *http.Request) (int, any, error) {
	roomID, err := urlParam(r, "roomId")
	if err != nil {
		return 0, nil, err
	}
	receiptType, err := urlParam(r, "receiptType")
	if err != nil {
		return 0, nil, err
	}
	eventID, err := urlParam(r, "eventId")
	if err != nil {
		return 0, nil, err
	}
	var body receiptBody
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	thread := ""
	if body.ThreadID != nil {
		thread = *body.ThreadID
		if receiptType == fullyRead {
			return 0, nil, errInvalidParam("m.fully_read takes no thread_id")
		}
		if thread != "main" && !strings.HasPrefix(thread, "$") {
			return 0, nil, errInvalidParam(`thread_id must be "main" or an event ID`)
		}
	}
	switch receiptType {
	case receiptRead, receiptReadPrivate, fullyRead:
	default:
		return 0, nil, errInvalidParam("receipt type must be m.read, m.read.private or m.fully_read")
	}
	c := callerFrom(r.Context())
	nid, err := s.markableEvent(r.Context(), roomID, c.UserID, eventID)
	if err != nil {
		return 0, nil, err
	}
	if receiptType == fullyRead {
		err = s.putFullyRead(r.Context(), c.UserID, roomID, eventID)
	} else {
		err = s.putReceipt(r.Context(), persistence.Receipt{RoomNID: nid, RoomID: roomID, UserID: c.UserID, Type: receiptType, ThreadID: thread, EventID: eventID})
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

type readMarkersBody struct {
	FullyRead   string `json:"m.fully_read"`
	Read        string `json:"m.read"`
	ReadPrivate string `json:"m.read.private"`
}

// postReadMarkers: POST /rooms/{roomId}/read_markers, any of the three.
func (s *Server) postReadMarkers(r *http.Request) (int, any, error) {
	roomID, err := urlParam(r, "roomId")
	if err != nil {
		return 0, nil, err
	}
	var body readMarkersBody
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	// Check every event before writing any marker.
	var nid persistence.RoomNID
	for _, id := range []string{body.FullyRead, body.Read, body.ReadPrivate} {
		if id == "" {
			continue
		}
		if nid, err = s.markableEvent(r.Context(), roomID, c.UserID, id); err != nil {
			return 0, nil, err
		}
	}
	if body.FullyRead != "" {
		if err := s.putFullyRead(r.Context(), c.UserID, roomID, body.FullyRead); err != nil {
			return 0, nil, err
		}
	}
	for typ, id := range map[string]string{receiptRead: body.Read, receiptReadPrivate: body.ReadPrivate} {
		if id == "" {
			continue
		}
		if err := s.putReceipt(r.Context(), persistence.Receipt{RoomNID: nid, RoomID: roomID, UserID: c.UserID, Type: typ, EventID: id}); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, struct{}{}, nil
}

// markableEvent checks that the user is joined to the room and that the
// event is one of its events, returning the room's NID.
func (s *Server) markableEvent(ctx context.Context, roomID, userID, eventID string) (persistence.RoomNID, error) {
	a, err := s.accessFor(ctx, roomID, userID)
	if err != nil {
		return 0, err
	}
	if a.current != "join" {
		return 0, errForbidden("You are not joined to this room")
	}
	ev, err := s.store.EventByID(ctx, eventID)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && ev.RoomID != roomID) {
		return 0, errNotFound("Unknown event in this room")
	}
	if err != nil {
		return 0, err
	}
	return a.nid, nil
}

func (s *Server) putReceipt(ctx context.Context, rc persistence.Receipt) error {
	rc.TS = time.Now().UnixMilli()
	pos, err := s.store.PutReceipt(ctx, rc)
	if err != nil {
		return err
	}
	if rc.Type == receiptReadPrivate {
		// Only the reader sees it: wake their syncs, not the room's.
		s.publish(&messages.RoomAdvanced{StreamPos: int64(pos), Users: []string{rc.UserID}})
	} else {
		s.publish(&messages.RoomAdvanced{RoomId: rc.RoomID, StreamPos: int64(pos)})
		s.federated(ctx, "m.receipt", func(e FederationEDUs) error {
			return e.Receipt(ctx, rc.RoomID, rc.UserID, rc.EventID, rc.ThreadID, rc.TS)
		})
	}
	return nil
}

func (s *Server) putFullyRead(ctx context.Context, userID, roomID, eventID string) error {
	content, _ := json.Marshal(map[string]string{"event_id": eventID})
	return s.putUserData(ctx, userID, roomID, fullyRead, content)
}
