package httpapi

import "github.com/go-chi/chi/v5"

// roomRoutes are the room endpoints: commands go to the room's actor,
// reads go to the projections the actor writes.
func (s *Server) roomRoutes(r chi.Router) {
	r.Post("/createRoom", s.serve(s.authed(s.createRoomHandler)))
	r.Post("/join/{roomIdOrAlias}", s.serve(s.authed(s.membershipHandler("join"))))
	r.Get("/joined_rooms", s.serve(s.authed(s.joinedRoomsHandler)))
	r.Post("/search", s.serve(s.authed(s.searchHandler)))
	r.Route("/rooms/{roomId}", func(r chi.Router) {
		r.Post("/join", s.serve(s.authed(s.membershipHandler("join"))))
		r.Post("/leave", s.serve(s.authed(s.membershipHandler("leave"))))
		r.Post("/invite", s.serve(s.authed(s.membershipHandler("invite"))))
		r.Post("/kick", s.serve(s.authed(s.membershipHandler("kick"))))
		r.Post("/ban", s.serve(s.authed(s.membershipHandler("ban"))))
		r.Post("/unban", s.serve(s.authed(s.membershipHandler("unban"))))
		r.Post("/forget", s.serve(s.authed(s.forgetHandler)))
		r.Post("/upgrade", s.serve(s.authed(s.upgradeRoomHandler)))
		r.Put("/send/{eventType}/{txnId}", s.serve(s.authed(s.sendHandler)))
		r.Put("/redact/{eventId}/{txnId}", s.serve(s.authed(s.redactHandler)))
		r.Get("/state", s.serve(s.authed(s.getStateHandler)))
		// An empty state key is a trailing slash, or no segment at all.
		r.Get("/state/{eventType}", s.serve(s.authed(s.getStateEventHandler)))
		r.Get("/state/{eventType}/", s.serve(s.authed(s.getStateEventHandler)))
		r.Get("/state/{eventType}/{stateKey}", s.serve(s.authed(s.getStateEventHandler)))
		r.Put("/state/{eventType}", s.serve(s.authed(s.putStateHandler)))
		r.Put("/state/{eventType}/", s.serve(s.authed(s.putStateHandler)))
		r.Put("/state/{eventType}/{stateKey}", s.serve(s.authed(s.putStateHandler)))
		r.Get("/event/{eventId}", s.serve(s.authed(s.getEventHandler)))
		r.Get("/members", s.serve(s.authed(s.membersHandler)))
		r.Get("/joined_members", s.serve(s.authed(s.joinedMembersHandler)))
		r.Get("/messages", s.serve(s.authed(s.messagesHandler)))
		r.Get("/context/{eventId}", s.serve(s.authed(s.contextHandler)))
	})
	s.directoryRoutes(r)
}

// roomV1Routes are the room reads the spec versions v1: relations, threads
// and timestamp_to_event.
func (s *Server) roomV1Routes(r chi.Router) {
	r.Route("/_matrix/client/v1/rooms/{roomId}", func(r chi.Router) {
		r.Get("/relations/{eventId}", s.serve(s.authed(s.relationsHandler)))
		r.Get("/relations/{eventId}/{relType}", s.serve(s.authed(s.relationsHandler)))
		r.Get("/relations/{eventId}/{relType}/{eventType}", s.serve(s.authed(s.relationsHandler)))
		r.Get("/threads", s.serve(s.authed(s.threadsHandler)))
		r.Get("/timestamp_to_event", s.serve(s.authed(s.timestampToEventHandler)))
	})
}

// syncRoutes are /sync, the filters it applies and the push rules clients
// read before their first sync.
func (s *Server) syncRoutes(r chi.Router) {
	r.Get("/sync", s.serve(s.authed(s.syncHandler)))
	r.Post("/user/{userId}/filter", s.serve(s.authed(s.postFilterHandler)))
	r.Get("/user/{userId}/filter/{filterId}", s.serve(s.authed(s.getFilterHandler)))
	r.Get("/pushrules/", s.serve(s.authed(s.pushRulesHandler(false))))
	r.Get("/pushrules/global/", s.serve(s.authed(s.pushRulesHandler(true))))
	r.Get("/pushrules/global/{kind}/{ruleId}", s.serve(s.authed(s.pushRuleHandler(""))))
	r.Get("/pushrules/global/{kind}/{ruleId}/enabled", s.serve(s.authed(s.pushRuleHandler("enabled"))))
	r.Get("/pushrules/global/{kind}/{ruleId}/actions", s.serve(s.authed(s.pushRuleHandler("actions"))))
	s.pushRuleWriteRoutes(r)
}
