package httpapi

import "net/http"

// capabilities implements GET /capabilities.
func (s *Server) capabilities(*http.Request) (int, any, error) {
	enabled := func(b bool) map[string]bool { return map[string]bool{"enabled": b} }
	return http.StatusOK, map[string]any{
		"capabilities": map[string]any{
			"m.change_password": enabled(true),
			"m.room_versions": map[string]any{
				"default":   s.opts.DefaultRoomVersion,
				"available": map[string]string{"10": "stable", "11": "stable"},
			},
			"m.set_displayname": enabled(true),
			"m.set_avatar_url":  enabled(true),
			"m.3pid_changes":    enabled(false),
		},
	}, nil
}
