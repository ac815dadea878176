package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/persistence"
)

// Presence: PUT and GET /presence/{userId}/status, kept in the node's
// memory (PresenceTracker) and shown as m.presence in /sync to the users
// who share a room. A syncing user is marked online (or as set_presence
// says). With presence disabled (Options.Presence nil) a PUT is accepted
// and ignored, a GET says offline and /sync shows none, as Synapse does.

// PresenceTracker is the node's presence state: *actors.Presence.
type PresenceTracker interface {
	Set(userID, presence string, statusMsg *string)
	Synced(userID, presence string)
	Get(userID string) actors.PresenceState
	Serial() int64
	Changed(userIDs []string, since int64) map[string]actors.PresenceState
	Wait(userIDs []string, since int64) (<-chan struct{}, func())
}

func (s *Server) presenceRoutes(r chi.Router) {
	r.Put("/presence/{userId}/status", s.serve(s.authed(s.putPresence)))
	r.Get("/presence/{userId}/status", s.serve(s.authed(s.getPresence)))
}

// putPresence: PUT /presence/{userId}/status with {"presence", "status_msg"}.
func (s *Server) putPresence(r *http.Request) (int, any, error) {
	userID, err := urlParam(r, "userId")
	if err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	if userID != c.UserID {
		return 0, nil, errForbidden("Cannot set another user's presence")
	}
	var body struct {
		Presence  *string         `json:"presence"`
		StatusMsg json.RawMessage `json:"status_msg"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if body.Presence == nil {
		return 0, nil, errMissingParam("presence must be specified")
	}
	if !actors.ValidPresence(*body.Presence) {
		return 0, nil, errInvalidParam("presence must be one of online, offline, unavailable")
	}
	var msg *string
	if len(body.StatusMsg) > 0 && string(body.StatusMsg) != "null" {
		var m string
		if err := json.Unmarshal(body.StatusMsg, &m); err != nil {
			return 0, nil, errBadJSON("status_msg must be a string")
		}
		msg = &m
	}
	if s.opts.Presence != nil {
		s.opts.Presence.Set(c.UserID, *body.Presence, msg)
	}
	return http.StatusOK, struct{}{}, nil
}

// getPresence: GET /presence/{userId}/status, for the caller and for the
// users who share a joined room with them.
func (s *Server) getPresence(r *http.Request) (int, any, error) {
	userID, err := urlParam(r, "userId")
	if err != nil {
		return 0, nil, err
	}
	lp, server, ok := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	if !strings.HasPrefix(userID, "@") || !ok || lp == "" || server == "" {
		return 0, nil, errInvalidParam("malformed user ID")
	}
	if server == s.opts.ServerName {
		if _, err := s.store.GetProfile(r.Context(), lp); errors.Is(err, persistence.ErrNotFound) {
			return 0, nil, errNotFound("Unknown user")
		} else if err != nil {
			return 0, nil, err
		}
	}
	c := callerFrom(r.Context())
	if userID != c.UserID {
		shared, err := s.sharesRoom(r.Context(), c.UserID, userID)
		if err != nil {
			return 0, nil, err
		}
		if !shared {
			return 0, nil, errForbidden("You are not allowed to see their presence")
		}
	}
	st := actors.PresenceState{Presence: actors.PresenceOffline}
	if s.opts.Presence != nil {
		st = s.opts.Presence.Get(userID)
	}
	return http.StatusOK, presenceContent(st, time.Now()), nil
}

// sharesRoom: a and b are both joined to some room.
func (s *Server) sharesRoom(ctx context.Context, a, b string) (bool, error) {
	ams, err := s.store.MembershipsForUser(ctx, a)
	if err != nil {
		return false, err
	}
	joined := map[persistence.RoomNID]bool{}
	for _, m := range ams {
		if m.Membership == "join" {
			joined[m.RoomNID] = true
		}
	}
	bms, err := s.store.MembershipsForUser(ctx, b)
	if err != nil {
		return false, err
	}
	for _, m := range bms {
		if m.Membership == "join" && joined[m.RoomNID] {
			return true, nil
		}
	}
	return false, nil
}

// presenceContent is the body of GET /presence and of m.presence events.
func presenceContent(st actors.PresenceState, now time.Time) map[string]any {
	out := map[string]any{"presence": st.Presence, "currently_active": st.CurrentlyActive}
	if !st.LastActive.IsZero() {
		out["last_active_ago"] = max(now.Sub(st.LastActive).Milliseconds(), 0)
	}
	if st.StatusMsg != nil {
		out["status_msg"] = *st.StatusMsg
	}
	return out
}

// parseSetPresence reads /sync's set_presence: online by default.
func parseSetPresence(v string) (string, error) {
	if v == "" {
		return actors.PresenceOnline, nil
	}
	if !actors.ValidPresence(v) {
		return "", errInvalidParam("set_presence must be one of online, offline, unavailable")
	}
	return v, nil
}

// presenceSynced marks the syncing user as set_presence says, before the
// sync reads the serials, so that its own change is in its next_batch.
func (s *Server) presenceSynced(req *syncRequest, setPresence string) {
	if s.opts.Presence != nil {
		s.opts.Presence.Synced(req.userID, setPresence)
	}
}

// presenceFor returns the m.presence events /sync shows: of the users who
// share a joined room with the syncing user, and the user, those whose
// presence changed since the token's presence serial (in an initial or
// full_state sync, every one this node knows), as the filter's presence
// part allows. It keeps the users in req.presenceUsers for the long poll
// to wait on. The filter's room part has already left rooms out of ms, so
// it also narrows whose presence is shown.
func (s *Server) presenceFor(ctx context.Context, req *syncRequest, ms []persistence.Membership) ([]any, error) {
	req.presenceUsers = nil
	if s.opts.Presence == nil {
		return []any{}, nil
	}
	users, err := s.roomMates(ctx, req.userID, ms)
	if err != nil {
		return nil, err
	}
	var limit *int
	if req.filter != nil {
		f := &req.filter.Presence
		users = slices.DeleteFunc(users, func(u string) bool { return !f.allows("m.presence", u) })
		limit = f.Limit
	}
	req.presenceUsers = users
	since := req.presenceSince
	if !req.hasSince || req.fullState {
		since = 0
	}
	changed := s.opts.Presence.Changed(users, since)
	ids := make([]string, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if limit != nil && *limit >= 0 && len(ids) > *limit {
		ids = ids[:*limit]
	}
	now := time.Now()
	events := make([]any, 0, len(ids))
	for _, id := range ids {
		content := presenceContent(changed[id], now)
		s.addProfileTo(ctx, id, content)
		events = append(events, map[string]any{"type": "m.presence", "sender": id, "content": content})
	}
	return events, nil
}

// roomMates is the user and everyone joined to one of the rooms ms shows
// them joined to, sorted. The rooms' member lists come from joinedCache:
// in a big room every message wakes every member's sync, and each would
// otherwise read the whole member list again.
func (s *Server) roomMates(ctx context.Context, userID string, ms []persistence.Membership) ([]string, error) {
	var lists [][]string
	for _, m := range ms {
		if m.Membership != "join" {
			continue
		}
		users, err := s.joinedMembers(ctx, m)
		if err != nil {
			return nil, err
		}
		lists = append(lists, users)
	}
	if len(lists) == 1 {
		if _, found := slices.BinarySearch(lists[0], userID); found {
			return lists[0], nil // shared: the callers only read it
		}
	}
	set := map[string]bool{userID: true}
	for _, users := range lists {
		for _, u := range users {
			set[u] = true
		}
	}
	users := make([]string, 0, len(set))
	for u := range set {
		users = append(users, u)
	}
	slices.Sort(users)
	return users, nil
}

// addProfileTo adds a local user's display name and avatar to an
// m.presence content; a profile that cannot be read is left out.
func (s *Server) addProfileTo(ctx context.Context, userID string, content map[string]any) {
	lp, server, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	if server != s.opts.ServerName {
		return
	}
	p, err := s.cachedProfile(ctx, lp)
	if err != nil {
		return
	}
	if p.DisplayName != "" {
		content["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		content["avatar_url"] = p.AvatarURL
	}
}

// presenceWait is the long poll's wait on the presence of the sync's
// users; a nil channel (never ready) when presence is off.
func (s *Server) presenceWait(req *syncRequest) (<-chan struct{}, func()) {
	if s.opts.Presence == nil {
		return nil, func() {}
	}
	return s.opts.Presence.Wait(req.presenceUsers, req.presenceTo)
}
