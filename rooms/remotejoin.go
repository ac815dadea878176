package rooms

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Joins over federation, both ways. A remote user joins a room here in two
// steps: makeMembership gives its server a template built on the room's
// head, which that server signs and sends back (send_join) as an input
// event. A local user joins a remote room through its resident server;
// joinRemote then stores what that server answered: the state before the
// join and its auth chain as outliers, and the join as the first event of
// the room's timeline on this server.

// makeMembership builds the unsigned membership template of make_join or
// make_leave, refusing what the room would not allow.
func (a *Actor) makeMembership(msg *messages.MakeMembership) *messages.MakeMembershipReply {
	if a.moved {
		return &messages.MakeMembershipReply{Error: errRoomMoved.Proto()}
	}
	if e := a.ensureLoaded(); e != nil {
		return &messages.MakeMembershipReply{Error: e.Proto()}
	}
	if !a.room.Exists() {
		return &messages.MakeMembershipReply{Error: notFound("this server is not in the room").Proto()}
	}
	if msg.Membership != spec.Join && msg.Membership != spec.Leave {
		return &messages.MakeMembershipReply{Error: badJSON("membership must be join or leave").Proto()}
	}
	r := a.room
	content, _ := json.Marshal(map[string]string{"membership": msg.Membership})
	userID := msg.UserId
	pe := gomatrixserverlib.ProtoEvent{
		SenderID: userID, RoomID: r.ID, Type: spec.MRoomMember, StateKey: &userID,
		Content: content, PrevEvents: append([]string{}, r.Extremities...), Depth: r.Depth + 1,
		Version: r.Version,
	}
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&pe)
	if err != nil {
		return &messages.MakeMembershipReply{Error: badJSON("%s", err).Proto()}
	}
	if pe.AuthEvents, err = needed.AuthEventReferences(r.State); err != nil {
		return &messages.MakeMembershipReply{Error: asError(fmt.Errorf("auth events: %w", err), a.log).Proto()}
	}
	// Authorise a copy signed by this server: the rules read the event, not
	// its signatures, and the remote server signs the real one.
	trial, err := r.Version.NewEventBuilderFromProtoEvent(&pe).Build(a.deps.Now(), a.deps.Signer.ServerName, a.deps.Signer.KeyID, a.deps.Signer.Key)
	if err != nil {
		return &messages.MakeMembershipReply{Error: badJSON("cannot build the event: %s", err).Proto()}
	}
	if err := gomatrixserverlib.Allowed(trial, r.State, userIDForSender); err != nil {
		return &messages.MakeMembershipReply{Error: forbidden("%s", err).Proto()}
	}
	template, err := json.Marshal(struct {
		gomatrixserverlib.ProtoEvent
		Origin         spec.ServerName `json:"origin"`
		OriginServerTS spec.Timestamp  `json:"origin_server_ts"`
	}{pe, spec.ServerName(serverOf(userID)), spec.AsTimestamp(a.deps.Now())})
	if err != nil {
		return &messages.MakeMembershipReply{Error: asError(err, a.log).Proto()}
	}
	return &messages.MakeMembershipReply{RoomVersion: string(r.Version.Version()), Event: template}
}

// joinRemote stores a room joined through another server. Federation has
// checked the signatures and authorisation of the state and auth chain
// (CheckSendJoinResponse); the room checks that the join is allowed by
// that state.
func (a *Actor) joinRemote(msg *messages.JoinRemoteRoom) *messages.JoinRemoteRoomReply {
	fail := func(e *Error) *messages.JoinRemoteRoomReply { return &messages.JoinRemoteRoomReply{Error: e.Proto()} }
	if a.moved {
		return fail(errRoomMoved)
	}
	if e := a.ensureLoaded(); e != nil && e.ErrCode != "M_NOT_FOUND" {
		return fail(e)
	}
	fresh, err := NewRoom(a.roomID, msg.RoomVersion)
	if err != nil {
		return fail(asError(err, a.log))
	}
	if a.room != nil && a.room.Version.Version() != fresh.Version.Version() {
		return fail(badJSON("the room is version %s here", a.room.Version.Version()))
	}
	join, err := fresh.Version.NewEventFromUntrustedJSON(msg.JoinEvent)
	if err != nil {
		return fail(badJSON("join event: %s", err))
	}
	if join.RoomID().String() != a.roomID || join.Type() != spec.MRoomMember {
		return fail(badJSON("the join event is not a membership event of this room"))
	}

	// Outliers: the auth chain and the state, each once, skipping those
	// stored already.
	var outliers []persistence.NewEvent
	state := State{}
	seen := map[string]bool{}
	parse := func(raw []byte, isState bool) error {
		ev, err := fresh.Version.NewEventFromUntrustedJSON(raw)
		if err != nil {
			return err
		}
		if ev.RoomID().String() != a.roomID {
			return fmt.Errorf("event %s is of another room", ev.EventID())
		}
		if isState {
			state.apply(ev)
		}
		if seen[ev.EventID()] {
			return nil
		}
		seen[ev.EventID()] = true
		stored, err := a.isStored(ev.EventID())
		if err != nil || stored {
			return err
		}
		record := newEventRecord(ev, nil)
		record.Outlier, record.Membership, record.Redacts = true, "", ""
		outliers = append(outliers, record)
		return nil
	}
	for _, raw := range msg.AuthChain {
		if err := parse(raw, false); err != nil {
			return fail(badJSON("auth chain: %s", err))
		}
	}
	for _, raw := range msg.State {
		if err := parse(raw, true); err != nil {
			return fail(badJSON("state: %s", err))
		}
	}
	if state.Get(spec.MRoomCreate, "") == nil {
		return fail(badJSON("the state has no create event"))
	}
	if err := gomatrixserverlib.Allowed(join, state, userIDForSender); err != nil {
		return fail(forbidden("the join is not allowed by the room's state: %s", err))
	}
	if stored, err := a.isStored(join.EventID()); err != nil {
		return fail(a.storeFailed(err))
	} else if stored {
		// Joined already (a retry after a lost reply).
		return &messages.JoinRemoteRoomReply{EventId: join.EventID()}
	}

	record := newEventRecord(join, nil)
	record.StateBefore = state.refs()
	req := persistence.CommitRequest{Events: append(outliers, record)}
	next := fresh
	if a.room != nil {
		copied := *a.room
		next = &copied
	} else {
		req.NewRoom = &persistence.NewRoom{RoomID: a.roomID, Version: msg.RoomVersion}
	}
	after := state.clone()
	after.apply(join)
	next.State, next.Members = after, membersOf(after)
	next.Extremities, next.Depth = []string{join.EventID()}, max(next.Depth, join.Depth())
	res, e := a.commitRequest(next, req)
	if e != nil {
		return fail(e)
	}
	return &messages.JoinRemoteRoomReply{EventId: join.EventID(), StreamPos: int64(res.LastStream)}
}

func (a *Actor) isStored(eventID string) (bool, error) {
	ctx, cancel := a.storeContext()
	defer cancel()
	_, err := a.deps.Store.EventByID(ctx, eventID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, persistence.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}
