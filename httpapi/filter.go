package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Filters are stored in their IDs: a filter ID is the unpadded base64url of
// the filter's JSON, so a filter needs no table, survives restarts and is
// the same on every node. Only the parts /sync applies are interpreted.
const maxFilterBytes = 8192

// syncFilter is the part of a filter /sync applies today.
type syncFilter struct {
	Room struct {
		IncludeLeave bool `json:"include_leave"`
		Timeline     struct {
			Limit *int `json:"limit"`
		} `json:"timeline"`
	} `json:"room"`
}

// postFilterHandler: POST /user/{userId}/filter.
func (s *Server) postFilterHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	if pathParam(r, "userId") != c.UserID {
		return 0, nil, errForbidden("cannot create filters for other users")
	}
	body, err := readJSONObject(r)
	if err != nil {
		return 0, nil, err
	}
	if len(body) > maxFilterBytes {
		return 0, nil, matrixError(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "filter too large")
	}
	var f syncFilter
	if err := json.Unmarshal(body, &f); err != nil {
		return 0, nil, errBadJSON("invalid filter: " + err.Error())
	}
	return http.StatusOK, map[string]string{"filter_id": base64.RawURLEncoding.EncodeToString(body)}, nil
}

// getFilterHandler: GET /user/{userId}/filter/{filterId}.
func (s *Server) getFilterHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	if pathParam(r, "userId") != c.UserID {
		return 0, nil, errForbidden("cannot read filters of other users")
	}
	raw, err := base64.RawURLEncoding.DecodeString(pathParam(r, "filterId"))
	if err != nil || !json.Valid(raw) {
		return 0, nil, errNotFound("no such filter")
	}
	return http.StatusOK, json.RawMessage(raw), nil
}

// parseSyncFilter reads /sync's filter parameter: inline JSON or a filter ID.
func parseSyncFilter(param string) (*syncFilter, error) {
	f := &syncFilter{}
	if param == "" {
		return f, nil
	}
	raw := []byte(param)
	if !strings.HasPrefix(strings.TrimSpace(param), "{") {
		var err error
		if raw, err = base64.RawURLEncoding.DecodeString(param); err != nil {
			return nil, errInvalidParam("unknown filter ID")
		}
	}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, errInvalidParam("invalid filter")
	}
	return f, nil
}
