package rooms

// CanSeeEvent applies the spec's history visibility rules to one event.
// visibility is the room's m.room.history_visibility at the event; atEvent
// is the user's membership at the event (for their own membership events,
// the membership the event sets); joinedLater tells whether the user is
// joined now or was joined when they last left. Callers bound a departed
// user's reads at their departure, so that "joined at any point after the
// event" (the rule for shared) is exactly joinedLater.
func CanSeeEvent(visibility, atEvent string, joinedLater bool) bool {
	switch visibility {
	case "world_readable":
		return true
	case "", "shared": // unset means shared
		return atEvent == "join" || joinedLater
	case "invited":
		return atEvent == "join" || atEvent == "invite"
	default: // joined, or an unknown value: the strictest reading
		return atEvent == "join"
	}
}
