package httpapi

import (
	"net/http"

	"github.com/soma-chat/soma/rooms"
)

// capabilities implements GET /capabilities. The room versions are the
// ones the rooms package can create: what /createRoom and /upgrade accept.
func (s *Server) capabilities(*http.Request) (int, any, error) {
	enabled := func(b bool) map[string]bool { return map[string]bool{"enabled": b} }
	available := make(map[string]string, len(rooms.SupportedVersions))
	for v, ok := range rooms.SupportedVersions {
		if ok {
			available[v] = "stable"
		}
	}
	return http.StatusOK, map[string]any{
		"capabilities": map[string]any{
			"m.change_password": enabled(true),
			"m.room_versions": map[string]any{
				"default":   s.opts.DefaultRoomVersion,
				"available": available,
			},
			"m.set_displayname": enabled(true),
			"m.set_avatar_url":  enabled(true),
			"m.3pid_changes":    enabled(false),
		},
	}, nil
}
