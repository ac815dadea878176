package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
)

// Typing notifications: PUT /rooms/{roomId}/typing/{userId}, kept in the
// node's memory (TypingTracker) and shown as m.typing in /sync.

// TypingTracker is the node's typing state: *actors.Typing.
type TypingTracker interface {
	Set(roomID, userID string, typing bool, timeout time.Duration)
	Serial() int64
	Changed(roomIDs []string, since int64) map[string][]string
	Wait(roomIDs []string, since int64) (<-chan struct{}, func())
}

const defaultTypingTimeout = 30 * time.Second

func (s *Server) typingRoutes(r chi.Router) {
	r.Put("/rooms/{roomId}/typing/{userId}", s.serve(s.authed(s.putTyping)))
}

type typingBody struct {
	Typing  *bool  `json:"typing"`
	Timeout *int64 `json:"timeout"`
}

// putTyping: PUT /rooms/{roomId}/typing/{userId} with {"typing", "timeout"}.
func (s *Server) putTyping(r *http.Request) (int, any, error) {
	roomID, err := urlParam(r, "roomId")
	if err != nil {
		return 0, nil, err
	}
	userID, err := urlParam(r, "userId")
	if err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	if userID != c.UserID {
		return 0, nil, errForbidden("Cannot set another user's typing state")
	}
	var body typingBody
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if body.Typing == nil {
		return 0, nil, errMissingParam("typing must be specified")
	}
	timeout := defaultTypingTimeout
	if body.Timeout != nil {
		if *body.Timeout < 0 {
			return 0, nil, errInvalidParam("timeout must not be negative")
		}
		timeout = time.Duration(min(*body.Timeout, int64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	a, err := s.accessFor(r.Context(), roomID, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	if a.current != "join" {
		return 0, nil, errForbidden("You are not joined to this room")
	}
	if s.opts.Typing != nil {
		s.opts.Typing.Set(roomID, c.UserID, *body.Typing, timeout)
	}
	s.federated(r.Context(), "m.typing", func(e FederationEDUs) error {
		return e.Typing(r.Context(), roomID, c.UserID, *body.Typing)
	})
	return http.StatusOK, struct{}{}, nil
}

// typingFor returns the typing sets /sync shows for the user's joined
// rooms: those changed since the token's typing serial, or in an initial
// (or full_state) sync those where someone is typing.
func (s *Server) typingFor(req *syncRequest, rooms []string) map[string][]string {
	if s.opts.Typing == nil || len(rooms) == 0 {
		return nil
	}
	full := !req.hasSince || req.fullState
	since := req.typingSince
	if full {
		since = 0
	}
	changed := s.opts.Typing.Changed(rooms, since)
	if full {
		for id, users := range changed {
			if len(users) == 0 {
				delete(changed, id)
			}
		}
	}
	return changed
}

// typingEvent is a room's m.typing ephemeral event.
func typingEvent(users []string) any {
	return map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": users}}
}
