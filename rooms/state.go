package rooms

import (
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Tuple is a (type, state key) pair.
type Tuple = gomatrixserverlib.StateKeyTuple

// State is a room's state at one point: (type, state key) → event. It is
// also the AuthEventProvider the auth rules check against, so events are
// authorised against the room's current state without copying it.
type State map[Tuple]gomatrixserverlib.PDU

// Get returns the state event for (type, stateKey) or nil.
func (s State) Get(eventType, stateKey string) gomatrixserverlib.PDU {
	return s[Tuple{EventType: eventType, StateKey: stateKey}]
}

// Membership returns the membership of userID ("" if none).
func (s State) Membership(userID string) string {
	ev := s.Get(spec.MRoomMember, userID)
	if ev == nil {
		return ""
	}
	m, err := ev.Membership()
	if err != nil {
		return ""
	}
	return m
}

// Create implements gomatrixserverlib.AuthEventProvider.
func (s State) Create() (gomatrixserverlib.PDU, error) { return s.Get(spec.MRoomCreate, ""), nil }

// JoinRules implements gomatrixserverlib.AuthEventProvider.
func (s State) JoinRules() (gomatrixserverlib.PDU, error) {
	return s.Get(spec.MRoomJoinRules, ""), nil
}

// PowerLevels implements gomatrixserverlib.AuthEventProvider.
func (s State) PowerLevels() (gomatrixserverlib.PDU, error) {
	return s.Get(spec.MRoomPowerLevels, ""), nil
}

// Member implements gomatrixserverlib.AuthEventProvider.
func (s State) Member(stateKey spec.SenderID) (gomatrixserverlib.PDU, error) {
	return s.Get(spec.MRoomMember, string(stateKey)), nil
}

// ThirdPartyInvite implements gomatrixserverlib.AuthEventProvider.
func (s State) ThirdPartyInvite(stateKey string) (gomatrixserverlib.PDU, error) {
	return s.Get(spec.MRoomThirdPartyInvite, stateKey), nil
}

// Valid implements gomatrixserverlib.AuthEventProvider: a room's state only
// ever holds that room's events.
func (s State) Valid() bool { return true }
