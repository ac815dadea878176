package httpapi

import "net/http"

// versions lists the spec versions Soma implements.
func (s *Server) versions(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]any{
		"versions":          []string{"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12"},
		"unstable_features": map[string]bool{},
	}, nil
}

// wellKnownServer delegates federation for the server name to another
// host[:port] (spec: server discovery), when one is configured.
func (s *Server) wellKnownServer(*http.Request) (int, any, error) {
	if s.opts.WellKnownServer == "" {
		return 0, nil, errNotFound("No federation delegation is configured")
	}
	return http.StatusOK, map[string]string{"m.server": s.opts.WellKnownServer}, nil
}

func (s *Server) wellKnownClient(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]any{
		"m.homeserver": map[string]string{"base_url": s.opts.PublicBaseURL},
	}, nil
}
