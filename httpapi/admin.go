package httpapi

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/persistence"
)

// The admin API, under /_soma/admin/v1: live figures of the active room
// actors, and the accounts (list, create, deactivate, reset password). Every
// route needs the access token of an admin account.

const adminPrefix = "/_soma/admin/v1"

// RoomStatsSource is where the admin API reads the live figures of the
// active room actors: *metrics.Actors. Reading them asks no actor.
type RoomStatsSource interface {
	RoomStats() []metrics.RoomStats
	Room(roomID string) (metrics.RoomStats, bool)
}

var _ RoomStatsSource = (*metrics.Actors)(nil)

// Page sizes of the admin lists.
const (
	adminDefaultLimit = 100
	adminMaxLimit     = 1000
)

// roomSortKeys are the orders GET /rooms offers, each descending.
var roomSortKeys = map[string]func(metrics.RoomStats) float64{
	"events_per_second":  func(r metrics.RoomStats) float64 { return r.EventsPerSecond },
	"mailbox_depth":      func(r metrics.RoomStats) float64 { return float64(r.MailboxDepth) },
	"joined_members":     func(r metrics.RoomStats) float64 { return float64(r.JoinedMembers) },
	"messages_processed": func(r metrics.RoomStats) float64 { return float64(r.MessagesProcessed) },
}

const defaultRoomSort = "events_per_second"

func (s *Server) adminRoutes(r chi.Router) {
	r.Route(adminPrefix, func(r chi.Router) {
		r.Get("/rooms", s.serve(s.admin(s.adminListRooms)))
		r.Get("/rooms/{roomId}", s.serve(s.admin(s.adminRoom)))
		r.Post("/rooms/{roomId}/fault", s.serve(s.admin(s.adminInjectFault)))
		r.Get("/users", s.serve(s.admin(s.adminListUsers)))
		r.Post("/users", s.serve(s.admin(s.adminCreateUser)))
		r.Post("/users/{userId}/deactivate", s.serve(s.admin(s.adminDeactivateUser)))
		r.Post("/users/{userId}/password", s.serve(s.admin(s.adminResetPassword)))
	})
}

// admin wraps a handler that needs an admin's access token: the account is
// read on every request, so that a demotion takes effect at once.
func (s *Server) admin(h handlerFunc) handlerFunc {
	return s.authed(func(r *http.Request) (int, any, error) {
		c := callerFrom(r.Context())
		acc, err := s.store.GetAccount(r.Context(), c.Localpart)
		if err != nil && !errors.Is(err, persistence.ErrNotFound) {
			return 0, nil, err
		}
		if err != nil || !acc.IsAdmin || acc.Deactivated {
			return 0, nil, errForbidden("You are not a server admin")
		}
		return h(r)
	})
}

// adminLimit reads the limit query parameter: default adminDefaultLimit,
// at most adminMaxLimit.
func adminLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return adminDefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errInvalidParam("limit must be a positive integer")
	}
	return min(n, adminMaxLimit), nil
}

type adminRoomsResponse struct {
	Rooms []metrics.RoomStats `json:"rooms"`
	// Total is how many room actors are active, however many are listed.
	Total int `json:"total"`
}

// adminListRooms implements GET /rooms: the active room actors, sorted
// descending by ?sort=, ties by room ID.
func (s *Server) adminListRooms(r *http.Request) (int, any, error) {
	sortBy := r.URL.Query().Get("sort")
	if sortBy == "" {
		sortBy = defaultRoomSort
	}
	key, ok := roomSortKeys[sortBy]
	if !ok {
		return 0, nil, errInvalidParam("sort must be one of events_per_second, mailbox_depth, joined_members, messages_processed")
	}
	limit, err := adminLimit(r)
	if err != nil {
		return 0, nil, err
	}
	var rooms []metrics.RoomStats
	if s.opts.RoomStats != nil {
		rooms = s.opts.RoomStats.RoomStats()
	}
	slices.SortStableFunc(rooms, func(a, b metrics.RoomStats) int {
		if c := cmp.Compare(key(b), key(a)); c != 0 {
			return c
		}
		return strings.Compare(a.RoomID, b.RoomID)
	})
	resp := adminRoomsResponse{Rooms: rooms, Total: len(rooms)}
	if len(rooms) > limit {
		resp.Rooms = rooms[:limit]
	}
	if resp.Rooms == nil {
		resp.Rooms = []metrics.RoomStats{}
	}
	return http.StatusOK, resp, nil
}

type adminUser struct {
	UserID      string `json:"user_id"`
	Admin       bool   `json:"admin"`
	Deactivated bool   `json:"deactivated"`
	CreatedTS   int64  `json:"created_ts"`
}

type adminUsersResponse struct {
	Users []adminUser `json:"users"`
	// NextToken is the from of the next page; absent on the last.
	NextToken string `json:"next_token,omitempty"`
}

// adminListUsers implements GET /users?from=&limit=: accounts by user ID.
// from is the next_token of the previous page (a localpart or user ID).
func (s *Server) adminListUsers(r *http.Request) (int, any, error) {
	limit, err := adminLimit(r)
	if err != nil {
		return 0, nil, err
	}
	from := r.URL.Query().Get("from")
	if from != "" {
		if from, err = s.loginLocalpart(from); err != nil {
			return 0, nil, err
		}
	}
	accs, err := s.store.ListAccounts(r.Context(), from, limit+1)
	if err != nil {
		return 0, nil, err
	}
	resp := adminUsersResponse{Users: make([]adminUser, 0, min(len(accs), limit))}
	if len(accs) > limit {
		accs = accs[:limit]
		resp.NextToken = accs[limit-1].Localpart
	}
	for _, a := range accs {
		resp.Users = append(resp.Users, adminUser{
			UserID: s.localUserID(a.Localpart), Admin: a.IsAdmin, Deactivated: a.Deactivated, CreatedTS: a.CreatedTS,
		})
	}
	return http.StatusOK, resp, nil
}

type adminCreateUserRequest struct {
	Username    *string `json:"username"`
	Password    *string `json:"password"`
	Admin       bool    `json:"admin"`
	DisplayName string  `json:"displayname"`
}

// adminCreateUser implements POST /users: it creates an account as
// shared-secret registration does, without logging it in.
func (s *Server) adminCreateUser(r *http.Request) (int, any, error) {
	var req adminCreateUserRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Username == nil {
		return 0, nil, errMissingParam("username must be specified")
	}
	if req.Password == nil {
		return 0, nil, errMissingParam("password must be specified")
	}
	if err := checkNewPassword(*req.Password); err != nil {
		return 0, nil, err
	}
	localpart, err := s.createNamedAccount(r.Context(), *req.Username, *req.Password, req.Admin, req.DisplayName)
	if err != nil {
		return 0, nil, err
	}
	userID := s.localUserID(localpart)
	zerolog.Ctx(r.Context()).Info().Str("target_user_id", userID).Bool("admin", req.Admin).
		Str("by", callerFrom(r.Context()).UserID).Msg("account created by an admin")
	return http.StatusOK, map[string]any{"user_id": userID, "admin": req.Admin}, nil
}

// adminTarget reads the {userId} path parameter: a local account's
// localpart, 404 when there is no such account.
func (s *Server) adminTarget(r *http.Request) (string, error) {
	userID, err := urlParam(r, "userId")
	if err != nil {
		return "", err
	}
	lp, err := s.loginLocalpart(userID)
	if err != nil {
		return "", err
	}
	if _, err := s.store.GetAccount(r.Context(), lp); err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return "", errNotFound("Unknown user")
		}
		return "", err
	}
	return lp, nil
}

// adminDeactivateUser implements POST /users/{userId}/deactivate: the
// account can no longer log in, and every device and token of it is gone.
func (s *Server) adminDeactivateUser(r *http.Request) (int, any, error) {
	lp, err := s.adminTarget(r)
	if err != nil {
		return 0, nil, err
	}
	if err := s.deactivate(r.Context(), lp); err != nil {
		return 0, nil, err
	}
	userID := s.localUserID(lp)
	zerolog.Ctx(r.Context()).Info().Str("target_user_id", userID).
		Str("by", callerFrom(r.Context()).UserID).Msg("account deactivated by an admin")
	return http.StatusOK, map[string]any{"user_id": userID, "deactivated": true}, nil
}

type adminResetPasswordRequest struct {
	NewPassword *string `json:"new_password"`
	// LogoutDevices defaults to true.
	LogoutDevices *bool `json:"logout_devices"`
}

// adminResetPassword implements POST /users/{userId}/password: a new
// password and, unless logout_devices is false, every device logged out.
func (s *Server) adminResetPassword(r *http.Request) (int, any, error) {
	lp, err := s.adminTarget(r)
	if err != nil {
		return 0, nil, err
	}
	var req adminResetPasswordRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.NewPassword == nil {
		return 0, nil, errMissingParam("new_password must be specified")
	}
	if err := checkNewPassword(*req.NewPassword); err != nil {
		return 0, nil, err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := s.setPassword(r.Context(), lp, *req.NewPassword, logout, ""); err != nil {
		return 0, nil, err
	}
	zerolog.Ctx(r.Context()).Info().Str("target_user_id", s.localUserID(lp)).Bool("logout_devices", logout).
		Str("by", callerFrom(r.Context()).UserID).Msg("password reset by an admin")
	return http.StatusOK, struct{}{}, nil
}
