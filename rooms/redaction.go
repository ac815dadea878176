package rooms

import (
	"encoding/json"
	"errors"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Redactions. Since room version 3 the auth rules admit every redaction
// event; whether it takes effect is the server's decision: the sender
// redacts their own event, or has the room's redact power level. The room
// refuses a client's redaction it would not apply, and records the ones it
// applies (persistence.NewEvent.Redacts).

const eventTypeRedaction = "m.room.redaction"

// normalizeRedaction reads the redacted event's ID from the request (the
// redact endpoint's, or content.redacts of one sent with /send) and puts
// it where the room version keeps it: in the content for version 11, at
// the top level before; events carry both, for clients of either kind.
func normalizeRedaction(version string, c *messages.EventContent) (*messages.EventContent, *Error) {
	var content map[string]json.RawMessage
	if err := json.Unmarshal(c.Content, &content); err != nil {
		return nil, badJSON("event content must be a JSON object")
	}
	out := proto.Clone(c).(*messages.EventContent)
	if out.Redacts == "" {
		_ = json.Unmarshal(content["redacts"], &out.Redacts)
	}
	if out.Redacts == "" {
		return nil, badJSON("a redaction needs the event it redacts")
	}
	if version == "11" {
		content["redacts"], _ = json.Marshal(out.Redacts)
		out.Content, _ = json.Marshal(content)
	}
	return out, nil
}

// redactsOf returns the event a redaction redacts: content.redacts (room
// version 11), else the top-level key. (gomatrixserverlib's PDU.Redacts
// reads the top level only.)
func redactsOf(ev gomatrixserverlib.PDU) string {
	var c struct {
		Redacts string `json:"redacts"`
	}
	if json.Unmarshal(ev.Content(), &c) == nil && c.Redacts != "" {
		return c.Redacts
	}
	return ev.Redacts()
}

// checkRedaction refuses a client's redaction the room would not apply:
// of an event that is not the room's, or of someone else's event without
// the redact power level.
func (a *Actor) checkRedaction(c *messages.EventContent) *Error {
	ctx, cancel := a.storeContext()
	defer cancel()
	target, err := a.deps.Store.EventByID(ctx, c.Redacts)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && target.RoomID != a.roomID) {
		return notFound("unknown event %s in this room", c.Redacts)
	}
	if err != nil {
		a.log.Error().Err(err).Msg("reading the event to redact")
		return unavailable("the room is temporarily unavailable")
	}
	if target.Sender == c.Sender || a.room.canRedactOthers(c.Sender) {
		return nil
	}
	return forbidden("you may redact your own events only")
}

// appliesRemoteRedaction says whether a redaction from another server
// takes effect (spec: the redacted event's sender is of the redaction
// sender's server, or the sender has the redact power level in the state
// before the redaction). A target the room does not have is not redacted.
func (a *Actor) appliesRemoteRedaction(redaction gomatrixserverlib.PDU, targetID string, before State) (bool, error) {
	ctx, cancel := a.storeContext()
	defer cancel()
	target, err := a.deps.Store.EventByID(ctx, targetID)
	if errors.Is(err, persistence.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sender := string(redaction.SenderID())
	return target.RoomID == a.roomID && (serverOf(target.Sender) == serverOf(sender) || before.canRedactOthers(sender)), nil
}

// canRedactOthers reports whether the user has the redact power level.
func (r *Room) canRedactOthers(userID string) bool { return r.State.canRedactOthers(userID) }

// canRedactOthers reports whether the user has the redact power level in
// the state.
func (s State) canRedactOthers(userID string) bool {
	plEvent := s.Get(spec.MRoomPowerLevels, "")
	if plEvent == nil {
		return false // every room Soma creates has power levels
	}
	pl, err := plEvent.PowerLevels()
	if err != nil {
		return false
	}
	return pl.UserLevel(spec.SenderID(userID)) >= pl.Redact
}
