// Package roomdirectory answers what others ask of this server's room
// directory: its public room list (filtered, paged) and the rooms its
// aliases name, with the servers joined to them. The Client-Server API
// (for local users) and the Server-Server API (for remote servers) share it.
package roomdirectory

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// Store is what the directory reads of storage.
type Store interface {
	PublicRooms(ctx context.Context) ([]persistence.PublicRoom, error)
	CurrentStateEvent(ctx context.Context, room persistence.RoomNID, eventType, stateKey string) (*persistence.StoredEvent, error)
	RoomAlias(ctx context.Context, alias string) (*persistence.RoomAlias, error)
	RoomInfo(ctx context.Context, roomID string) (nid persistence.RoomNID, version string, err error)
	RoomMemberships(ctx context.Context, room persistence.RoomNID) ([]persistence.Membership, error)
}

// MaxLimit bounds a page of the public room list.
const MaxLimit = 1000

// ErrBadSince is a since token this server did not hand out.
var ErrBadSince = errors.New("roomdirectory: invalid since token")

// Request asks for a page of the public room list (the body of POST
// /publicRooms in both APIs).
type Request struct {
	Limit                *int    `json:"limit,omitempty"`
	Since                string  `json:"since,omitempty"`
	Filter               *Filter `json:"filter,omitempty"`
	IncludeAllNetworks   bool    `json:"include_all_networks,omitempty"`
	ThirdPartyInstanceID string  `json:"third_party_instance_id,omitempty"`
}

// Filter narrows the list: a case-insensitive term in the name, topic or
// canonical alias, and room types (a nil entry is rooms without one).
type Filter struct {
	GenericSearchTerm string    `json:"generic_search_term,omitempty"`
	RoomTypes         []*string `json:"room_types,omitempty"`
}

// Response is a page of the public room list.
type Response struct {
	Chunk                  []Room `json:"chunk"`
	NextBatch              string `json:"next_batch,omitempty"`
	PrevBatch              string `json:"prev_batch,omitempty"`
	TotalRoomCountEstimate int    `json:"total_room_count_estimate"`
}

// Room is one room of the list (PublicRoomsChunk).
type Room struct {
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

// PublicRooms returns a page of the local public room list. Rooms are
// ordered by joined members, then room ID; tokens name the room a page
// ends (next_batch) or starts (prev_batch) at, so pages neither skip nor
// repeat a room that keeps its place. A since token this server did not
// make is ErrBadSince.
func PublicRooms(ctx context.Context, store Store, req Request) (*Response, error) {
	limit := MaxLimit
	if req.Limit != nil && *req.Limit > 0 {
		limit = min(*req.Limit, MaxLimit)
	}
	var cursor *roomsCursor
	if req.Since != "" {
		c, err := parseRoomsCursor(req.Since)
		if err != nil {
			return nil, err
		}
		cursor = c
	}
	resp := &Response{Chunk: []Room{}}
	if req.ThirdPartyInstanceID != "" {
		// No application services, so no third-party networks.
		return resp, nil
	}

	rooms, err := store.PublicRooms(ctx)
	if err != nil {
		return nil, err
	}
	chunks := make([]*Room, len(rooms))
	if req.Filter != nil && (req.Filter.GenericSearchTerm != "" || req.Filter.RoomTypes != nil) {
		term := strings.ToLower(req.Filter.GenericSearchTerm)
		kept, keptChunks := rooms[:0:0], chunks[:0:0]
		for _, pr := range rooms {
			ch, err := publicRoom(ctx, store, pr)
			if err != nil {
				return nil, err
			}
			if matchesFilter(ch, term, req.Filter.RoomTypes) {
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
	page := make([]Room, 0, end-start)
	for i := start; i < end; i++ {
		ch := chunks[i]
		if ch == nil {
			if ch, err = publicRoom(ctx, store, rooms[i]); err != nil {
				return nil, err
			}
		}
		page = append(page, *ch)
	}
	resp.Chunk = page
	resp.TotalRoomCountEstimate = len(rooms)
	if end < len(rooms) && end > start {
		resp.NextBatch = roomsCursor{forward: true, joined: rooms[end-1].JoinedMembers, roomID: rooms[end-1].RoomID}.String()
	}
	if start > 0 && start < len(rooms) {
		resp.PrevBatch = roomsCursor{joined: rooms[start].JoinedMembers, roomID: rooms[start].RoomID}.String()
	}
	return resp, nil
}

func matchesFilter(ch *Room, term string, roomTypes []*string) bool {
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

// publicRoom reads a published room's entry from its current state.
func publicRoom(ctx context.Context, store Store, pr persistence.PublicRoom) (*Room, error) {
	ch := &Room{RoomID: pr.RoomID, NumJoinedMembers: pr.JoinedMembers}
	field := func(typ, name string) (string, error) {
		ev, err := store.CurrentStateEvent(ctx, pr.RoomNID, typ, "")
		if errors.Is(err, persistence.ErrNotFound) {
			return "", nil
		}
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

// contentField is a string field of an event's content ("" when absent).
func contentField(ev *persistence.StoredEvent, field string) string {
	var outer struct {
		Content map[string]json.RawMessage `json:"content"`
	}
	if json.Unmarshal(ev.JSON, &outer) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(outer.Content[field], &s) != nil {
		return ""
	}
	return s
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
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || (b[0] != 'n' && b[0] != 'p') {
		return nil, ErrBadSince
	}
	n, roomID, ok := strings.Cut(string(b[1:]), "|")
	joined, err := strconv.Atoi(n)
	if !ok || err != nil || roomID == "" {
		return nil, ErrBadSince
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

// ResolveAlias returns the room a local alias names and the servers that
// can help others join it: self first, then the servers of the room's
// joined members, sorted. persistence.ErrNotFound for an unknown alias.
func ResolveAlias(ctx context.Context, store Store, self, alias string) (roomID string, servers []string, err error) {
	a, err := store.RoomAlias(ctx, alias)
	if err != nil {
		return "", nil, err
	}
	servers = []string{self}
	nid, _, err := store.RoomInfo(ctx, a.RoomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return a.RoomID, servers, nil
	}
	if err != nil {
		return "", nil, err
	}
	// Every membership row: fine for the rooms an alias is asked of now;
	// a joined-servers projection would serve rooms of 10^5 members.
	members, err := store.RoomMemberships(ctx, nid)
	if err != nil {
		return "", nil, err
	}
	seen := map[string]bool{self: true}
	var others []string
	for _, m := range members {
		_, server, ok := strings.Cut(m.UserID, ":")
		if m.Membership != "join" || !ok || seen[server] {
			continue
		}
		seen[server] = true
		others = append(others, server)
	}
	slices.Sort(others)
	return a.RoomID, append(servers, others...), nil
}
