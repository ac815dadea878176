package httpapi

import "github.com/go-chi/chi/v5"

// accountRoutes mounts registration, login, sessions, profiles,
// capabilities, devices, account management, VoIP (TURN), third-party
// protocols and OpenID under a client API version prefix (v3 and r0).
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

	r.Get("/devices", s.serve(s.authed(s.listDevices)))
	r.Get("/devices/{deviceId}", s.serve(s.authed(s.getDevice)))
	r.Put("/devices/{deviceId}", s.serve(s.authed(s.updateDevice)))
	r.Delete("/devices/{deviceId}", s.serve(s.authed(s.deleteDevice)))
	r.Post("/delete_devices", s.serve(s.authed(s.deleteDevices)))

	r.Post("/account/password", s.serve(s.authed(s.changePassword)))
	r.Post("/account/deactivate", s.serve(s.authed(s.deactivateAccount)))
	r.Get("/account/3pid", s.serve(s.authed(s.threepids)))

	r.Get("/voip/turnServer", s.serve(s.authed(s.turnServer)))
	r.Get("/thirdparty/protocols", s.serve(s.authed(s.thirdPartyProtocols)))
	r.Post("/user/{userId}/openid/request_token", s.serve(s.authed(s.requestOpenIDToken)))
}
