package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/persistence"
)

// inspectTimeout bounds how long GET /rooms/{roomId} waits for the room's
// actor; an actor behind a deep mailbox answers late, and the figures
// alone still say why.
const inspectTimeout = 2 * time.Second

// adminRoomResponse is one room: the live figures the actor publishes and
// what the actor itself answered (or why it did not).
type adminRoomResponse struct {
	metrics.RoomStats
	Actor      *adminRoomActor `json:"actor,omitempty"`
	ActorError string          `json:"actor_error,omitempty"`
}

// adminRoomActor is the actor's answer to InspectRoom.
type adminRoomActor struct {
	// AnsweredInSeconds is the round trip through the actor's mailbox.
	AnsweredInSeconds  float64  `json:"answered_in_seconds"`
	Loaded             bool     `json:"loaded"`
	RoomVersion        string   `json:"room_version,omitempty"`
	Epoch              int64    `json:"epoch"`
	Depth              int64    `json:"depth"`
	ForwardExtremities []string `json:"forward_extremities"`
	StateEvents        int      `json:"state_events"`
	JoinedMembers      int      `json:"joined_members"`
	Servers            []string `json:"servers"`
	PendingSends       int      `json:"pending_sends"`
}

// adminRoom implements GET /rooms/{roomId}: the room's live figures, and
// the answer of its actor, which is asked through its mailbox (never
// activated). 404 when no actor of the room is active, saying whether the
// room is passivated or unknown.
func (s *Server) adminRoom(r *http.Request) (int, any, error) {
	roomID, err := urlParam(r, "roomId")
	if err != nil {
		return 0, nil, err
	}
	var resp adminRoomResponse
	var live bool
	if s.opts.RoomStats != nil {
		resp.RoomStats, live = s.opts.RoomStats.Room(roomID)
	}
	if s.opts.RoomInspector != nil {
		a, err := s.inspectRoom(r.Context(), roomID)
		switch {
		case err == nil:
			resp.Actor, live = a, true
		case errors.Is(err, actors.ErrRoomNotActive):
		default:
			resp.ActorError = err.Error()
		}
	}
	if live {
		resp.RoomID = roomID
		return http.StatusOK, resp, nil
	}
	_, _, err = s.store.RoomInfo(r.Context(), roomID)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return 0, nil, errNotFound("Unknown room")
	case err != nil:
		return 0, nil, err
	}
	return 0, nil, errNotFound("The room is passivated: no actor of it is active")
}

func (s *Server) inspectRoom(ctx context.Context, roomID string) (*adminRoomActor, error) {
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	start := time.Now()
	reply, err := s.opts.RoomInspector.RequestActiveRoom(ctx, roomID, &messages.InspectRoom{RoomId: roomID})
	if errors.Is(err, actors.ErrRoomUnavailable) {
		return nil, errors.New("the room's actor did not answer within " + inspectTimeout.String())
	}
	if err != nil {
		return nil, err
	}
	in, ok := reply.(*messages.RoomInspection)
	if !ok {
		return nil, errors.New("unexpected reply to InspectRoom")
	}
	if in.Error != nil {
		return nil, errors.New(in.Error.Message)
	}
	return &adminRoomActor{
		AnsweredInSeconds: time.Since(start).Seconds(),
		Loaded:            in.Loaded, RoomVersion: in.RoomVersion, Epoch: in.Epoch, Depth: in.Depth,
		ForwardExtremities: nonNil(in.ForwardExtremities), StateEvents: int(in.StateEvents),
		JoinedMembers: int(in.JoinedMembers), Servers: nonNil(in.Servers), PendingSends: int(in.PendingSends),
	}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type adminFaultRequest struct {
	Reason string `json:"reason"`
}

// adminInjectFault implements POST /rooms/{roomId}/fault when
// debug.fault_injection is on: the room's actor (activated if need be)
// panics while handling it, answers with an error, restarts and reloads
// the room from storage, as after a bug.
func (s *Server) adminInjectFault(r *http.Request) (int, any, error) {
	if !s.opts.FaultInjection {
		return 0, nil, errForbidden("Fault injection is disabled (debug.fault_injection)")
	}
	roomID, err := urlParam(r, "roomId")
	if err != nil {
		return 0, nil, err
	}
	req := adminFaultRequest{Reason: "requested by an admin"}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return 0, nil, err
		}
	}
	if _, _, err := s.store.RoomInfo(r.Context(), roomID); err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return 0, nil, errNotFound("Unknown room")
		}
		return 0, nil, err
	}
	reply, err := s.requestRoom(r.Context(), roomID, &messages.InjectFault{RoomId: roomID, Reason: req.Reason})
	if err != nil {
		return 0, nil, err
	}
	if f, ok := reply.(*messages.FaultReply); !ok || f.Error == nil {
		return 0, nil, errors.New("httpapi: the room's actor did not fail as asked")
	}
	zerolog.Ctx(r.Context()).Warn().Str("reason", req.Reason).
		Str("by", callerFrom(r.Context()).UserID).Msg("fault injected into a room actor")
	return http.StatusOK, map[string]any{"room_id": roomID, "panicked": true, "reason": req.Reason}, nil
}
