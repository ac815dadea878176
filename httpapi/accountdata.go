package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Account data (global and per room) and room tags, which are the room
// account data of type m.tag. Writes go to storage and wake the user's
// long-polling /sync.

// serverControlledAccountData are types clients set through other APIs
// (read markers, push rules): PUTting them is 405 M_BAD_JSON.
var serverControlledAccountData = map[string]bool{"m.fully_read": true, "m.push_rules": true}

const tagAccountDataType = "m.tag"

func (s *Server) accountDataRoutes(r chi.Router) {
	r.Get("/user/{userId}/account_data/{type}", s.serve(s.authed(s.getAccountData)))
	r.Put("/user/{userId}/account_data/{type}", s.serve(s.authed(s.putAccountData)))
	r.Get("/user/{userId}/rooms/{roomId}/account_data/{type}", s.serve(s.authed(s.getAccountData)))
	r.Put("/user/{userId}/rooms/{roomId}/account_data/{type}", s.serve(s.authed(s.putAccountData)))
	r.Get("/user/{userId}/rooms/{roomId}/tags", s.serve(s.authed(s.getTags)))
	r.Put("/user/{userId}/rooms/{roomId}/tags/{tag}", s.serve(s.authed(s.putTag)))
	r.Delete("/user/{userId}/rooms/{roomId}/tags/{tag}", s.serve(s.authed(s.deleteTag)))
}

// accountDataTarget reads {userId} (which must be the caller), {roomId}
// ("" on the global routes, else a valid room ID) and {type}.
func accountDataTarget(r *http.Request) (userID, roomID, dataType string, err error) {
	userID = callerFrom(r.Context()).UserID
	if owner, err := urlParam(r, "userId"); err != nil {
		return "", "", "", err
	} else if owner != userID {
		return "", "", "", errForbidden("Cannot access account data of other users")
	}
	if chi.URLParam(r, "roomId") != "" {
		if roomID, err = urlParam(r, "roomId"); err != nil {
			return "", "", "", err
		}
		if err := checkRoomID(roomID); err != nil {
			return "", "", "", err
		}
	}
	if chi.URLParam(r, "type") != "" {
		if dataType, err = urlParam(r, "type"); err != nil {
			return "", "", "", err
		}
	}
	return userID, roomID, dataType, nil
}

// getAccountData: GET .../account_data/{type}, global or per room.
func (s *Server) getAccountData(r *http.Request) (int, any, error) {
	userID, roomID, dataType, err := accountDataTarget(r)
	if err != nil {
		return 0, nil, err
	}
	content, err := s.store.GetAccountData(r.Context(), userID, roomID, dataType)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Account data not found")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, content, nil
}

// putAccountData: PUT .../account_data/{type}, global or per room.
func (s *Server) putAccountData(r *http.Request) (int, any, error) {
	userID, roomID, dataType, err := accountDataTarget(r)
	if err != nil {
		return 0, nil, err
	}
	if serverControlledAccountData[dataType] {
		return 0, nil, matrixError(http.StatusMethodNotAllowed, "M_BAD_JSON", "Cannot set "+dataType+" through this API")
	}
	if dataType == "" {
		return 0, nil, errInvalidParam("empty account data type")
	}
	body, err := readJSONObject(r)
	if err != nil {
		return 0, nil, err
	}
	if err := s.putUserData(r.Context(), userID, roomID, dataType, body); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// putUserData stores an account data entry and wakes the user's syncs.
func (s *Server) putUserData(ctx context.Context, userID, roomID, dataType string, content json.RawMessage) error {
	pos, err := s.store.PutAccountData(ctx, userID, persistence.AccountData{RoomID: roomID, Type: dataType, Content: content})
	if err != nil {
		return err
	}
	s.publish(&messages.RoomAdvanced{StreamPos: int64(pos), Users: []string{userID}})
	return nil
}

// publish tells the node's sync notifier about a stream write made here
// rather than by a room actor.
func (s *Server) publish(msg *messages.RoomAdvanced) {
	if s.opts.Publisher != nil {
		s.opts.Publisher.Publish(msg)
	}
}

type tagsContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

func (s *Server) readTags(ctx context.Context, userID, roomID string) (tagsContent, error) {
	tc := tagsContent{Tags: map[string]json.RawMessage{}}
	raw, err := s.store.GetAccountData(ctx, userID, roomID, tagAccountDataType)
	if errors.Is(err, persistence.ErrNotFound) {
		return tc, nil
	}
	if err != nil {
		return tc, err
	}
	if err := json.Unmarshal(raw, &tc); err != nil || tc.Tags == nil {
		tc.Tags = map[string]json.RawMessage{} // not ours to fail on: start afresh
	}
	return tc, nil
}

// getTags: GET /user/{userId}/rooms/{roomId}/tags.
func (s *Server) getTags(r *http.Request) (int, any, error) {
	userID, roomID, _, err := accountDataTarget(r)
	if err != nil {
		return 0, nil, err
	}
	tc, err := s.readTags(r.Context(), userID, roomID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tc, nil
}

type tagBody struct {
	Order *float64 `json:"order,omitempty"`
}

// putTag: PUT /user/{userId}/rooms/{roomId}/tags/{tag} with {"order"}.
func (s *Server) putTag(r *http.Request) (int, any, error) {
	return s.changeTag(r, true)
}

// deleteTag: DELETE /user/{userId}/rooms/{roomId}/tags/{tag}.
func (s *Server) deleteTag(r *http.Request) (int, any, error) {
	return s.changeTag(r, false)
}

func (s *Server) changeTag(r *http.Request, add bool) (int, any, error) {
	userID, roomID, _, err := accountDataTarget(r)
	if err != nil {
		return 0, nil, err
	}
	tag, err := urlParam(r, "tag")
	if err != nil {
		return 0, nil, err
	}
	if tag == "" || len(tag) > 255 {
		return 0, nil, errInvalidParam("a tag is 1 to 255 bytes")
	}
	var body tagBody
	if add {
		if err := decodeJSON(r, &body); err != nil {
			return 0, nil, err
		}
		if body.Order != nil && (*body.Order < 0 || *body.Order > 1) {
			return 0, nil, errInvalidParam("order must be between 0 and 1")
		}
	}
	tc, err := s.readTags(r.Context(), userID, roomID)
	if err != nil {
		return 0, nil, err
	}
	if add {
		enc, _ := json.Marshal(body)
		tc.Tags[tag] = enc
	} else {
		if _, ok := tc.Tags[tag]; !ok {
			return http.StatusOK, struct{}{}, nil
		}
		delete(tc.Tags, tag)
	}
	enc, err := json.Marshal(tc)
	if err != nil {
		return 0, nil, err
	}
	if err := s.putUserData(r.Context(), userID, roomID, tagAccountDataType, enc); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}
