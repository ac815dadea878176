package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// The room directory: aliases (aliases.go), whether a room is published,
// and the public room list read from the rooms' current state.

// directoryRoutes are the room and user directory endpoints.
func (s *Server) directoryRoutes(r chi.Router) {
	r.Get("/directory/room/{roomAlias}", s.serve(s.getRoomAliasHandler))
	r.Put("/directory/room/{roomAlias}", s.serve(s.authed(s.putRoomAliasHandler)))
	r.Delete("/directory/room/{roomAlias}", s.serve(s.authed(s.deleteRoomAliasHandler)))
	r.Get("/rooms/{roomId}/aliases", s.serve(s.authed(s.getRoomAliasesHandler)))
	r.Get("/directory/list/room/{roomId}", s.serve(s.getRoomVisibilityHandler))
	r.Put("/directory/list/room/{roomId}", s.serve(s.authed(s.putRoomVisibilityHandler)))
	r.Get("/publicRooms", s.serve(s.publicRoomsHandler))
	r.Post("/publicRooms", s.serve(s.authed(s.publicRoomsHandler)))
	r.Post("/user_directory/search", s.serve(s.authed(s.userDirectorySearchHandler)))
}

// knownRoom returns a room's NID, 404 M_NOT_FOUND for an unknown room.
func (s *Server) knownRoom(ctx context.Context, roomID string) (persistence.RoomNID, error) {
	if err := checkRoomID(roomID); err != nil {
		return 0, err
	}
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, errNotFound("Room not found")
	}
	return nid, err
}

// getRoomVisibilityHandler: GET /directory/list/room/{roomId}. No token.
func (s *Server) getRoomVisibilityHandler(r *http.Request) (int, any, error) {
	roomID := pathParam(r, "roomId")
	if _, err := s.knownRoom(r.Context(), roomID); err != nil {
		return 0, nil, err
	}
	v, err := s.store.RoomVisibility(r.Context(), roomID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"visibility": v}, nil
}

// putRoomVisibilityHandler: PUT /directory/list/room/{roomId}
// {visibility}, by a member who may send m.room.canonical_alias, or a
// server admin.
func (s *Server) putRoomVisibilityHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	roomID := pathParam(r, "roomId")
	var body struct {
		Visibility *string `json:"visibility"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	v := persistence.VisibilityPublic
	if body.Visibility != nil {
		v = *body.Visibility
	}
	if v != persistence.VisibilityPublic && v != persistence.VisibilityPrivate {
		return 0, nil, errInvalidParam("visibility must be public or private")
	}
	if _, err := s.knownRoom(r.Context(), roomID); err != nil {
		return 0, nil, err
	}
	ok, err := s.mayManageDirectory(r.Context(), roomID, c)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, errForbidden("You need the power to change the room's canonical alias to publish or unpublish it")
	}
	if err := s.store.SetRoomVisibility(r.Context(), roomID, v); err != nil {
		return 0, nil, err
	}
	logRoomID(r.Context(), roomID)
	return http.StatusOK, struct{}{}, nil
}

// mayManageDirectory: server admins, and members joined to the room whose
// power reaches what sending m.room.canonical_alias needs.
func (s *Server) mayManageDirectory(ctx context.Context, roomID string, c *caller) (bool, error) {
	acc, err := s.store.GetAccount(ctx, c.Localpart)
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return false, err
	}
	if err == nil && acc.IsAdmin && !acc.Deactivated {
		return true, nil
	}
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m, err := s.store.MembershipOf(ctx, nid, c.UserID)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && m.Membership != "join") {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.canSendState(ctx, nid, c.UserID, spec.MRoomCanonicalAlias)
}

// canSendState reads the current power levels: is the user's level at
// least the one a state event of this type needs? Without a power levels
// event, state_default is 0 (anyone may).
func (s *Server) canSendState(ctx context.Context, nid persistence.RoomNID, userID, eventType string) (bool, error) {
	ev, err := s.stateEventCurrent(ctx, nid, spec.MRoomPowerLevels, "")
	if err != nil || ev == nil {
		return err == nil, err
	}
	ce, err := toClientEvent(ev, false)
	if err != nil {
		return false, err
	}
	var pl struct {
		Users        map[string]json.RawMessage `json:"users"`
		UsersDefault json.RawMessage            `json:"users_default"`
		Events       map[string]json.RawMessage `json:"events"`
		StateDefault json.RawMessage            `json:"state_default"`
	}
	if json.Unmarshal(ce.Content, &pl) != nil {
		return false, nil
	}
	user := powerLevel(pl.UsersDefault, 0)
	if v, ok := pl.Users[userID]; ok {
		user = powerLevel(v, user)
	}
	need := powerLevel(pl.StateDefault, 50)
	if v, ok := pl.Events[eventType]; ok {
		need = powerLevel(v, need)
	}
	return user >= need, nil
}

// powerLevel reads a power level: an integer, or (older rooms) a string
// holding one; def otherwise.
func powerLevel(raw json.RawMessage, def int64) int64 {
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(str), 10, 64); err == nil {
			return n
		}
	}
	return def
}

// newRoomAlias checks /createRoom's room_alias_name: the full alias, ""
// without one; 400 M_ROOM_IN_USE when taken (the reservation in
// reserveRoomAlias decides races).
func (s *Server) newRoomAlias(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if strings.ContainsAny(name, ":#") || strings.TrimSpace(name) != name {
		return "", errInvalidParam("room_alias_name may not contain ':', '#' or surrounding spaces")
	}
	alias := "#" + name + ":" + s.opts.ServerName
	if err := s.localAlias(alias); err != nil {
		return "", err
	}
	if _, err := s.store.RoomAlias(ctx, alias); err == nil {
		return "", errRoomInUse(alias)
	} else if !errors.Is(err, persistence.ErrNotFound) {
		return "", err
	}
	return alias, nil
}

func errRoomInUse(alias string) error {
	return matrixError(http.StatusBadRequest, "M_ROOM_IN_USE", "Room alias "+alias+" is already taken")
}

// withCanonicalAlias adds the m.room.canonical_alias event to a new
// room's initial events, right after the power levels as the spec orders.
func withCanonicalAlias(events []*messages.EventContent, alias string) []*messages.EventContent {
	if alias == "" || len(events) == 0 {
		return events
	}
	at := len(events)
	for i, ev := range events {
		if ev.Type == spec.MRoomPowerLevels {
			at = i + 1
			break
		}
	}
	empty := ""
	b, _ := json.Marshal(map[string]string{"alias": alias})
	ev := &messages.EventContent{Sender: events[0].Sender, Type: spec.MRoomCanonicalAlias, StateKey: &empty, Content: b}
	// An initial_state canonical alias would come later and override ours.
	return append(events[:at:at], append([]*messages.EventContent{ev}, events[at:]...)...)
}

// reserveRoomAlias maps the alias to the room about to be created; the
// returned release undoes it when the creation fails.
func (s *Server) reserveRoomAlias(ctx context.Context, alias, roomID, creator string) (release func(), err error) {
	if alias == "" {
		return func() {}, nil
	}
	err = s.store.InsertRoomAlias(ctx, persistence.RoomAlias{Alias: alias, RoomID: roomID, Creator: creator, CreatedTS: time.Now().UnixMilli()})
	if errors.Is(err, persistence.ErrAliasExists) {
		return nil, errRoomInUse(alias)
	}
	if err != nil {
		return nil, err
	}
	return func() {
		if err := s.store.DeleteRoomAlias(context.WithoutCancel(ctx), alias); err != nil {
			s.log.Warn().Err(err).Str("alias", alias).Msg("alias of a room that was not created left behind")
		}
	}, nil
}

// publishNewRoom lists a new room created with visibility public.
func (s *Server) publishNewRoom(ctx context.Context, roomID, visibility string) error {
	if visibility != persistence.VisibilityPublic {
		return nil
	}
	return s.store.SetRoomVisibility(ctx, roomID, persistence.VisibilityPublic)
}

// Public room list.

const maxPublicRoomsLimit = 1000

type publicRoomsRequest struct {
	Limit  *int   `json:"limit"`
	Since  string `json:"since"`
	Filter *struct {
		GenericSearchTerm string    `json:"generic_search_term"`
		RoomTypes         []*string `json:"room_types"`
	} `json:"filter"`
	IncludeAllNetworks   bool   `json:"include_all_networks"`
	ThirdPartyInstanceID string `json:"third_party_instance_id"`
}

// publicRoomChunk is one room of the list (PublicRoomsChunk).
type publicRoomChunk struct {
	RoomID           string `json:"room_id"`
	NumJoinedMembers int    `json:"num_joined_members"`
	WorldReadable    bool   `json:"world_readable"`
	GuestCanJoin     bool   `json:"guest_can_join"`
	JoinRule         string `json:"join_rule,omitempty"`
	Name             string `json:"name,omitempty"`
	Topic            string `json:"topic,omitempty"`
	CanonicalAlias   string `json:"canonical_alias,omitempty"`
	AvatarURL        string `json:"avatar_url,omitempty"`
	RoomType         string `json:"room_type,omitempty"`
}

// publicRoomsHandler: GET and POST /publicRooms. GET needs no token.
// Rooms are ordered by joined members, then room ID; tokens name the room
// a page ends (next_batch) or starts (prev_batch) at, so pages neither
// skip nor repeat a room that keeps its place.
func (s *Server) publicRoomsHandler(r *http.Request) (int, any, error) {
	var req publicRoomsRequest
	if r.Method == http.MethodPost {
		if err := decodeJSON(r, &req); err != nil {
			return 0, nil, err
		}
	} else {
		q := r.URL.Query()
		req.Since = q.Get("since")
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil {
				return 0, nil, errInvalidParam("limit must be an integer")
			}
			req.Limit = &n
		}
	}
	if server := r.URL.Query().Get("server"); server != "" && server != s.opts.ServerName {
		// TODO(federation): fetch the remote server's list
		// (GET/POST /_matrix/federation/v1/publicRooms).
		return 0, nil, errNotFound("Cannot list the public rooms of " + server + ": this server does not talk to other servers yet (no federation)")
	}
	limit := maxPublicRoomsLimit
	if req.Limit != nil && *req.Limit > 0 {
		limit = min(*req.Limit, maxPublicRoomsLimit)
	}
	var cursor *roomsCursor
	if req.Since != "" {
		c, err := parseRoomsCursor(req.Since)
		if err != nil {
			return 0, nil, err
		}
		cursor = c
	}
	resp := map[string]any{"chunk": []publicRoomChunk{}, "total_room_count_estimate": 0}
	if req.ThirdPartyInstanceID != "" {
		// No application services, so no third-party networks.
		return http.StatusOK, resp, nil
	}

	rooms, err := s.store.PublicRooms(r.Context())
	if err != nil {
		return 0, nil, err
	}
	chunks := make([]*publicRoomChunk, len(rooms))
	if req.Filter != nil && (req.Filter.GenericSearchTerm != "" || req.Filter.RoomTypes != nil) {
		term := strings.ToLower(req.Filter.GenericSearchTerm)
		kept, keptChunks := rooms[:0:0], chunks[:0:0]
		for _, pr := range rooms {
			ch, err := s.publicRoomChunk(r.Context(), pr)
			if err != nil {
				return 0, nil, err
			}
			if matchesPublicRoomFilter(ch, term, req.Filter.RoomTypes) {
				kept, keptChunks = append(kept, pr), append(keptChunks, ch)
			}
		}
		rooms, chunks = kept, keptChunks
	}

	start, end := 0, len(rooms)
	switch {
	case cursor == nil:
		end = min(limit, len(rooms))
	case cursor.forward:
		start = len(rooms)
		for i, pr := range rooms {
			if cursor.before(pr) {
				start = i
				break
			}
		}
		end = min(start+limit, len(rooms))
	default:
		end = 0
		for i, pr := range rooms {
			if !cursor.after(pr) {
				break
			}
			end = i + 1
		}
		start = max(0, end-limit)
	}
	page := make([]publicRoomChunk, 0, end-start)
	for i := start; i < end; i++ {
		ch := chunks[i]
		if ch == nil {
			if ch, err = s.publicRoomChunk(r.Context(), rooms[i]); err != nil {
				return 0, nil, err
			}
		}
		page = append(page, *ch)
	}
	resp["chunk"] = page
	resp["total_room_count_estimate"] = len(rooms)
	if end < len(rooms) && end > start {
		resp["next_batch"] = roomsCursor{forward: true, joined: rooms[end-1].JoinedMembers, roomID: rooms[end-1].RoomID}.String()
	}
	if start > 0 && start < len(rooms) {
		resp["prev_batch"] = roomsCursor{joined: rooms[start].JoinedMembers, roomID: rooms[start].RoomID}.String()
	}
	return http.StatusOK, resp, nil
}

func matchesPublicRoomFilter(ch *publicRoomChunk, term string, roomTypes []*string) bool {
	if term != "" && !strings.Contains(strings.ToLower(ch.Name), term) &&
		!strings.Contains(strings.ToLower(ch.Topic), term) &&
		!strings.Contains(strings.ToLower(ch.CanonicalAlias), term) {
		return false
	}
	if roomTypes == nil {
		return true
	}
	for _, t := range roomTypes {
		if (t == nil && ch.RoomType == "") || (t != nil && *t == ch.RoomType) {
			return true
		}
	}
	return false
}

// publicRoomChunk reads a published room's entry from its current state.
func (s *Server) publicRoomChunk(ctx context.Context, pr persistence.PublicRoom) (*publicRoomChunk, error) {
	ch := &publicRoomChunk{RoomID: pr.RoomID, NumJoinedMembers: pr.JoinedMembers}
	field := func(typ, name string) (string, error) {
		ev, err := s.stateEventCurrent(ctx, pr.RoomNID, typ, "")
		if err != nil {
			return "", err
		}
		return contentField(ev, name), nil
	}
	for _, f := range []struct {
		typ, name string
		into      *string
	}{
		{spec.MRoomName, "name", &ch.Name},
		{spec.MRoomTopic, "topic", &ch.Topic},
		{spec.MRoomCanonicalAlias, "alias", &ch.CanonicalAlias},
		{spec.MRoomAvatar, "url", &ch.AvatarURL},
		{spec.MRoomJoinRules, "join_rule", &ch.JoinRule},
		{spec.MRoomCreate, "type", &ch.RoomType},
	} {
		v, err := field(f.typ, f.name)
		if err != nil {
			return nil, err
		}
		*f.into = v
	}
	hv, err := field(spec.MRoomHistoryVisibility, "history_visibility")
	if err != nil {
		return nil, err
	}
	ga, err := field(spec.MRoomGuestAccess, "guest_access")
	if err != nil {
		return nil, err
	}
	ch.WorldReadable, ch.GuestCanJoin = hv == "world_readable", ga == "can_join"
	return ch, nil
}

// roomsCursor is a public room list token: the room a page ended at
// (forward: the next page starts after it) or started at (backward: the
// previous page ends before it).
type roomsCursor struct {
	forward bool
	joined  int
	roomID  string
}

func (c roomsCursor) String() string {
	dir := "p"
	if c.forward {
		dir = "n"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + strconv.Itoa(c.joined) + "|" + c.roomID))
}

func parseRoomsCursor(tok string) (*roomsCursor, error) {
	bad := errInvalidParam("invalid since token")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || (b[0] != 'n' && b[0] != 'p') {
		return nil, bad
	}
	n, roomID, ok := strings.Cut(string(b[1:]), "|")
	joined, err := strconv.Atoi(n)
	if !ok || err != nil || roomID == "" {
		return nil, bad
	}
	return &roomsCursor{forward: b[0] == 'n', joined: joined, roomID: roomID}, nil
}

// before: pr comes after the cursor's room in the list's order.
func (c *roomsCursor) before(pr persistence.PublicRoom) bool {
	return pr.JoinedMembers < c.joined || (pr.JoinedMembers == c.joined && pr.RoomID > c.roomID)
}

// after: pr comes before the cursor's room in the list's order.
func (c *roomsCursor) after(pr persistence.PublicRoom) bool {
	return pr.JoinedMembers > c.joined || (pr.JoinedMembers == c.joined && pr.RoomID < c.roomID)
}
