package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// Filters are stored in their IDs: a filter ID is the unpadded base64url of
// the filter's JSON, so a filter needs no table, survives restarts and is
// the same on every node.
const maxFilterBytes = 8192

// eventFilter is the spec's EventFilter. A nil list is absent (everything
// passes); an empty positive list lets nothing pass; a not_ list wins over
// its positive list. Types may use '*' to match any run of characters.
type eventFilter struct {
	Limit      *int     `json:"limit"`
	Types      []string `json:"types"`
	NotTypes   []string `json:"not_types"`
	Senders    []string `json:"senders"`
	NotSenders []string `json:"not_senders"`
}

// roomEventFilter is the spec's RoomEventFilter (the timeline and state
// parts of a sync filter, and /messages' filter parameter).
type roomEventFilter struct {
	eventFilter
	Rooms                   []string `json:"rooms"`
	NotRooms                []string `json:"not_rooms"`
	ContainsURL             *bool    `json:"contains_url"`
	LazyLoadMembers         bool     `json:"lazy_load_members"`
	IncludeRedundantMembers bool     `json:"include_redundant_members"`
}

// roomFilter is a filter's room part.
type roomFilter struct {
	Rooms        []string        `json:"rooms"`
	NotRooms     []string        `json:"not_rooms"`
	IncludeLeave bool            `json:"include_leave"`
	Timeline     roomEventFilter `json:"timeline"`
	State        roomEventFilter `json:"state"`
	Ephemeral    roomEventFilter `json:"ephemeral"`
	AccountData  roomEventFilter `json:"account_data"`
}

// syncFilter is the spec's Filter: what /sync applies.
type syncFilter struct {
	AccountData eventFilter `json:"account_data"`
	Presence    eventFilter `json:"presence"`
	Room        roomFilter  `json:"room"`
}

// typeMatches reports whether an event type matches a pattern in which
// '*' stands for any run of characters.
func typeMatches(pattern, typ string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == typ
	}
	if !strings.HasPrefix(typ, parts[0]) {
		return false
	}
	typ = typ[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(typ, p)
		if i < 0 {
			return false
		}
		typ = typ[i+len(p):]
	}
	return len(typ) >= len(last) && strings.HasSuffix(typ, last)
}

func anyTypeMatches(patterns []string, typ string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return typeMatches(p, typ) })
}

// allows reports whether an event of this type and sender passes.
func (f *eventFilter) allows(typ, sender string) bool {
	if anyTypeMatches(f.NotTypes, typ) || slices.Contains(f.NotSenders, sender) {
		return false
	}
	if f.Types != nil && !anyTypeMatches(f.Types, typ) {
		return false
	}
	return f.Senders == nil || slices.Contains(f.Senders, sender)
}

// allowsType is allows for events without a sender (ephemeral, account
// data): sender lists do not apply.
func (f *eventFilter) allowsType(typ string) bool {
	if anyTypeMatches(f.NotTypes, typ) {
		return false
	}
	return f.Types == nil || anyTypeMatches(f.Types, typ)
}

// roomAllowed applies a rooms / not_rooms pair.
func roomAllowed(rooms, notRooms []string, roomID string) bool {
	if slices.Contains(notRooms, roomID) {
		return false
	}
	return rooms == nil || slices.Contains(rooms, roomID)
}

// allowsRoom reports whether the filter lets a room into the sync at all.
func (f *roomFilter) allowsRoom(roomID string) bool {
	return roomAllowed(f.Rooms, f.NotRooms, roomID)
}

// allowsEvent applies a room event filter to a stored event.
func (f *roomEventFilter) allowsEvent(ev *persistence.StoredEvent) bool {
	if !roomAllowed(f.Rooms, f.NotRooms, ev.RoomID) || !f.allows(ev.Type, ev.Sender) {
		return false
	}
	if f.ContainsURL != nil && *f.ContainsURL != (contentField(ev, "url") != "") {
		return false
	}
	return true
}

// selective reports whether the filter may drop any event (limit and
// lazy loading aside).
func (f *roomEventFilter) selective() bool {
	return f.Types != nil || f.NotTypes != nil || f.Senders != nil || f.NotSenders != nil ||
		f.Rooms != nil || f.NotRooms != nil || f.ContainsURL != nil
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

// parseFilterParam reads a filter parameter, inline JSON or a filter ID,
// into f.
func parseFilterParam(param string, f any) error {
	if param == "" {
		return nil
	}
	raw := []byte(param)
	if !strings.HasPrefix(strings.TrimSpace(param), "{") {
		var err error
		if raw, err = base64.RawURLEncoding.DecodeString(param); err != nil {
			return errInvalidParam("unknown filter ID")
		}
	}
	if err := json.Unmarshal(raw, f); err != nil {
		return errInvalidParam("invalid filter")
	}
	return nil
}

// parseSyncFilter reads /sync's filter parameter: inline JSON or a filter ID.
func parseSyncFilter(param string) (*syncFilter, error) {
	f := &syncFilter{}
	if err := parseFilterParam(param, f); err != nil {
		return nil, err
	}
	return f, nil
}

// parseRoomEventFilter reads /messages' filter parameter.
func parseRoomEventFilter(param string) (*roomEventFilter, error) {
	f := &roomEventFilter{}
	if err := parseFilterParam(param, f); err != nil {
		return nil, err
	}
	return f, nil
}
