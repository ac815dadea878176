package rooms

import (
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Invites across servers. Inviting a remote user takes the invitee's
// server's signature before the room stores the invite: buildEvent signs
// and authorises it without storing, federation has it countersigned
// (/invite), and it comes back as an input event. Invited by another
// server, a local user's invite, and the leave that rejects it, are stored
// in a stub of the room (storeRemoteMembership): a room with no state but
// that membership, until a join brings the state.

// inviteStateTypes are the stripped state events an invite carries (the
// spec's recommendation), with the inviter's membership.
var inviteStateTypes = map[string]bool{
	spec.MRoomCreate: true, spec.MRoomJoinRules: true, spec.MRoomName: true,
	"m.room.avatar": true, spec.MRoomCanonicalAlias: true, "m.room.encryption": true, spec.MRoomTopic: true,
}

// buildEvent answers BuildEvent.
func (a *Actor) buildEvent(msg *messages.BuildEvent) *messages.BuildEventReply {
	if a.moved {
		return &messages.BuildEventReply{Error: errRoomMoved.Proto()}
	}
	if e := a.ensureLoaded(); e != nil {
		return &messages.BuildEventReply{Error: e.Proto()}
	}
	ev, err := a.room.Build(msg.Event, a.deps.Now(), a.deps.Signer)
	if err != nil {
		return &messages.BuildEventReply{Error: asError(err, a.log).Proto()}
	}
	reply := &messages.BuildEventReply{Event: ev.JSON(), RoomVersion: string(a.room.Version.Version())}
	for t, st := range a.room.State {
		if !inviteStateTypes[t.EventType] && !(t.EventType == spec.MRoomMember && t.StateKey == msg.Event.Sender) {
			continue
		}
		stripped, err := json.Marshal(gomatrixserverlib.NewInviteStrippedState(st))
		if err != nil {
			return &messages.BuildEventReply{Error: asError(err, a.log).Proto()}
		}
		reply.InviteRoomState = append(reply.InviteRoomState, stripped)
	}
	return reply
}

// storeRemoteMembership answers StoreRemoteMembership. In a room whose
// state this server has, the event comes through the room's transactions
// like any other, so nothing is stored here.
func (a *Actor) storeRemoteMembership(msg *messages.StoreRemoteMembership) *messages.StoreRemoteMembershipReply {
	fail := func(e *Error) *messages.StoreRemoteMembershipReply {
		return &messages.StoreRemoteMembershipReply{Error: e.Proto()}
	}
	if a.moved {
		return fail(errRoomMoved)
	}
	if e := a.ensureLoaded(); e != nil && e.ErrCode != "M_NOT_FOUND" {
		return fail(e)
	}
	if a.room != nil && a.room.Exists() {
		return &messages.StoreRemoteMembershipReply{}
	}
	next, err := NewRoom(a.roomID, msg.RoomVersion)
	if err != nil {
		return fail(asError(err, a.log))
	}
	if a.room != nil {
		copied := *a.room
		next = &copied
	}
	ev, err := next.Version.NewEventFromUntrustedJSON(msg.Event)
	if err != nil {
		return fail(badJSON("membership event: %s", err))
	}
	if ev.RoomID().String() != a.roomID || ev.Type() != spec.MRoomMember || ev.StateKey() == nil {
		return fail(badJSON("not a membership event of this room"))
	}
	if stored, err := a.isStored(ev.EventID()); err != nil {
		return fail(a.storeFailed(err))
	} else if stored {
		return &messages.StoreRemoteMembershipReply{}
	}
	if len(msg.InviteRoomState) > 0 {
		state := make([]json.RawMessage, len(msg.InviteRoomState))
		for i, raw := range msg.InviteRoomState {
			state[i] = raw
		}
		if err := ev.SetUnsignedField("invite_room_state", state); err != nil {
			return fail(badJSON("invite_room_state: %s", err))
		}
	}
	// A stub's state is its local users' memberships.
	req := persistence.CommitRequest{Events: []persistence.NewEvent{newEventRecord(ev, nil)}}
	if a.room == nil {
		req.NewRoom = &persistence.NewRoom{RoomID: a.roomID, Version: msg.RoomVersion}
	}
	next.State = next.State.clone()
	next.State.apply(ev)
	next.Members = membersOf(next.State)
	next.Extremities, next.Depth = []string{ev.EventID()}, ev.Depth()
	res, e := a.commitRequest(next, req)
	if e != nil {
		return fail(e)
	}
	return &messages.StoreRemoteMembershipReply{StreamPos: int64(res.LastStream)}
}
