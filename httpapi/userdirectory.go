package httpapi

import (
	"context"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// The user directory: local users matched on user ID or display name
// (their global profile), among those the searcher shares a joined room
// with and those joined to a public room (join rule public, or history
// world readable), as Synapse does by default. The searcher shows only
// through a public room. Remote users come with federation.

const (
	defaultUserDirectoryLimit = 10
	maxUserDirectoryLimit     = 100
	// userDirectoryBatch is how many matching accounts are read at a time
	// while looking for visible ones.
	userDirectoryBatch = 200
)

type userDirectoryResult struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// userDirectorySearchHandler: POST /user_directory/search.
func (s *Server) userDirectorySearchHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	var req struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.SearchTerm == nil {
		return 0, nil, errMissingParam("search_term is required")
	}
	limit := defaultUserDirectoryLimit
	if req.Limit != nil {
		if *req.Limit < 0 {
			return 0, nil, errInvalidParam("limit may not be negative")
		}
		limit = min(*req.Limit, maxUserDirectoryLimit)
	}
	v, err := s.newUserVisibility(r.Context(), c.UserID)
	if err != nil {
		return 0, nil, err
	}
	results := []userDirectoryResult{}
	limited := false
	after := ""
	for !limited {
		users, err := s.store.SearchLocalUsers(r.Context(), s.opts.ServerName, *req.SearchTerm, after, userDirectoryBatch)
		if err != nil {
			return 0, nil, err
		}
		for _, u := range users {
			userID := s.localUserID(u.Localpart)
			ok, err := v.visible(r.Context(), userID)
			if err != nil {
				return 0, nil, err
			}
			if !ok {
				continue
			}
			if len(results) == limit {
				limited = true
				break
			}
			results = append(results, userDirectoryResult{UserID: userID, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL})
		}
		if len(users) < userDirectoryBatch {
			break
		}
		after = users[len(users)-1].Localpart
	}
	return http.StatusOK, map[string]any{"results": results, "limited": limited}, nil
}

// userVisibility decides whom one searcher may find, caching per room
// whether it is public.
type userVisibility struct {
	s        *Server
	searcher string
	shared   map[persistence.RoomNID]bool // the searcher's joined rooms
	public   map[persistence.RoomNID]bool
}

func (s *Server) newUserVisibility(ctx context.Context, searcher string) (*userVisibility, error) {
	ms, err := s.store.MembershipsForUser(ctx, searcher)
	if err != nil {
		return nil, err
	}
	v := &userVisibility{s: s, searcher: searcher, shared: map[persistence.RoomNID]bool{}, public: map[persistence.RoomNID]bool{}}
	for _, m := range ms {
		if m.Membership == "join" {
			v.shared[m.RoomNID] = true
		}
	}
	return v, nil
}

func (v *userVisibility) visible(ctx context.Context, userID string) (bool, error) {
	ms, err := v.s.store.MembershipsForUser(ctx, userID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.Membership != "join" {
			continue
		}
		if userID != v.searcher && v.shared[m.RoomNID] {
			return true, nil
		}
		pub, err := v.isPublic(ctx, m.RoomNID)
		if err != nil {
			return false, err
		}
		if pub {
			return true, nil
		}
	}
	return false, nil
}

// isPublic: anyone may join the room, or read its history.
func (v *userVisibility) isPublic(ctx context.Context, nid persistence.RoomNID) (bool, error) {
	if pub, ok := v.public[nid]; ok {
		return pub, nil
	}
	jr, err := v.s.stateEventCurrent(ctx, nid, spec.MRoomJoinRules, "")
	if err != nil {
		return false, err
	}
	pub := contentField(jr, "join_rule") == "public"
	if !pub {
		hv, err := v.s.stateEventCurrent(ctx, nid, spec.MRoomHistoryVisibility, "")
		if err != nil {
			return false, err
		}
		pub = historyVisibilityOf(hv) == "world_readable"
	}
	v.public[nid] = pub
	return pub, nil
}
