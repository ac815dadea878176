package httpapi

import "github.com/go-chi/chi/v5"

// accountRoutes mounts registration, login, sessions, profiles and
// capabilities under a client API version prefix (v3 and r0).
func (s *Server) accountRoutes(r chi.Router) {
	r.Post("/register", s.serve(s.register))
	r.Get("/register/available", s.serve(s.registerAvailable))

	r.Get("/login", s.serve(s.loginFlows))
	r.Post("/login", s.serve(s.login))
	r.Post("/logout", s.serve(s.authed(s.logout)))
	r.Post("/logout/all", s.serve(s.authed(s.logoutAll)))
	r.Get("/account/whoami", s.serve(s.authed(s.whoami)))

	r.Get("/profile/{userId}", s.serve(s.getProfile))
	r.Get("/profile/{userId}/displayname", s.serve(s.getDisplayName))
	r.Put("/profile/{userId}/displayname", s.serve(s.authed(s.setDisplayName)))
	r.Get("/profile/{userId}/avatar_url", s.serve(s.getAvatarURL))
	r.Put("/profile/{userId}/avatar_url", s.serve(s.authed(s.setAvatarURL)))

	r.Get("/capabilities", s.serve(s.authed(s.capabilities)))
}
