package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/rooms"
)

// Invites and leaves across servers. Inbound: a remote server's invite of
// a local user is checked, countersigned and stored in a stub of the room
// (the user sees it in /sync); a remote user rejecting an invite to a
// room here goes through make_leave and send_leave. Outbound: inviting a
// remote user has the invitee's server countersign the invite before the
// room takes it; a local user rejecting a remote invite goes through the
// inviting server's make_leave and send_leave.

// AccountChecker says whether a local user exists.
type AccountChecker interface {
	GetAccount(ctx context.Context, localpart string) (*persistence.Account, error)
}

// PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
func (s *Server) invite(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	roomID, eventID := chi.URLParam(r, "roomId"), chi.URLParam(r, "eventId")
	var body struct {
		RoomVersion     string            `json:"room_version"`
		Event           json.RawMessage   `json:"event"`
		InviteRoomState []json.RawMessage `json:"invite_room_state"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Event) == 0 {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The invite is malformed")
		return
	}
	if !rooms.SupportedVersions[body.RoomVersion] {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "This server does not support the room's version",
			"room_version": body.RoomVersion,
		})
		return
	}
	verImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(body.RoomVersion))
	ev, err := verImpl.NewEventFromUntrustedJSON(body.Event)
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The event is malformed: "+err.Error())
		return
	}
	membership, _ := ev.Membership()
	switch {
	case ev.EventID() != eventID || ev.RoomID().String() != roomID:
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The event is not the one the path names")
		return
	case ev.Type() != spec.MRoomMember || membership != spec.Invite || ev.StateKey() == nil:
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The event is not an invite")
		return
	case senderServer(ev) != OriginFrom(ctx):
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The inviter is not of the requesting server")
		return
	}
	invitee, err := spec.NewUserID(*ev.StateKey(), true)
	if err != nil || invitee.Domain() != s.self.ServerName {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "The invitee is not of this server")
		return
	}
	if _, err := s.accounts.GetAccount(ctx, invitee.Local()); errors.Is(err, persistence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "No such user")
		return
	} else if err != nil {
		s.internalError(w, r, err, "reading an account")
		return
	}
	// An invite must carry the invitee's server's signature too: sign, then
	// check the inviter's.
	signed := ev.Sign(string(s.self.ServerName), s.self.Key.KeyID, s.self.Key.Private)
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, signed, s.keys, userIDForSender); err != nil {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The event's signatures do not verify: "+err.Error())
		return
	}
	msg := &messages.StoreRemoteMembership{RoomId: roomID, RoomVersion: body.RoomVersion, Event: signed.JSON()}
	for _, st := range body.InviteRoomState {
		msg.InviteRoomState = append(msg.InviteRoomState, st)
	}
	reply, err := s.rooms.RequestRoom(ctx, roomID, msg)
	if err != nil {
		s.roomUnavailable(w, r, err)
		return
	}
	if sr, _ := reply.(*messages.StoreRemoteMembershipReply); sr == nil || sr.Error != nil {
		writeRoomError(w, sr.GetError())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"event": json.RawMessage(signed.JSON())})
}

// GET /_matrix/federation/v1/make_leave/{roomId}/{userId}
func (s *Server) makeLeave(w http.ResponseWriter, r *http.Request) {
	roomID, userID, ok := s.membershipParams(w, r)
	if !ok {
		return
	}
	s.membershipTemplate(w, r, roomID, userID, spec.Leave)
}

// PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}
func (s *Server) sendLeave(w http.ResponseWriter, r *http.Request) {
	ev, ok := s.readMembershipEvent(w, r, spec.Leave)
	if !ok {
		return
	}
	res, ok := s.inputOne(w, r, ev.RoomID().String(), OriginFrom(r.Context()), ev)
	if !ok {
		return
	}
	if res.Rejected != "" || res.SoftFailed || len(res.MissingAuth) > 0 || len(res.MissingPrev) > 0 {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The leave is not allowed: "+inputRefusal(res))
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// readMembershipEvent reads the body of send_join or send_leave: an event
// of the room the path names, with that ID, changing its own sender's
// membership to membership, sent by the sender's server and signed by it.
func (s *Server) readMembershipEvent(w http.ResponseWriter, r *http.Request, membership string) (gomatrixserverlib.PDU, bool) {
	ctx := r.Context()
	roomID, eventID := chi.URLParam(r, "roomId"), chi.URLParam(r, "eventId")
	_, version, err := s.roomEvents.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "This server is not in the room")
		return nil, false
	}
	if err != nil {
		s.internalError(w, r, err, "reading the room")
		return nil, false
	}
	ev, ok := s.readPDU(w, r, version)
	if !ok {
		return nil, false
	}
	got, _ := ev.Membership()
	switch {
	case ev.EventID() != eventID || ev.RoomID().String() != roomID:
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The event is not the one the path names")
		return nil, false
	case ev.Type() != spec.MRoomMember || got != membership || ev.StateKey() == nil || *ev.StateKey() != string(ev.SenderID()):
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", fmt.Sprintf("The event is not a %s of its sender", membership))
		return nil, false
	case senderServer(ev) != OriginFrom(ctx):
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The user is not of the requesting server")
		return nil, false
	}
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, ev, s.keys, userIDForSender); err != nil {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The event's signatures do not verify: "+err.Error())
		return nil, false
	}
	return ev, true
}

// ErrInviteRefused is returned when the invitee's server would not
// countersign the invite.
var ErrInviteRefused = errors.New("federation: the invitee's server refused the invite")

// Invite invites a remote user into a room here: the room builds and signs
// the invite, the invitee's server countersigns it, and the room takes it
// as an input event (which also sends it to the room's other servers).
func (j *Memberships) Invite(ctx context.Context, roomID string, content *messages.EventContent) (string, error) {
	target, err := spec.NewUserID(content.GetStateKey(), true)
	if err != nil {
		return "", fmt.Errorf("federation.Invite: %w", err)
	}
	reply, err := j.rooms.RequestRoom(ctx, roomID, &messages.BuildEvent{RoomId: roomID, Event: content})
	if err != nil {
		return "", err
	}
	built, _ := reply.(*messages.BuildEventReply)
	if built == nil || built.Error != nil {
		return "", &RoomError{Err: built.GetError()}
	}
	version := gomatrixserverlib.RoomVersion(built.RoomVersion)
	verImpl := gomatrixserverlib.MustGetRoomVersion(version)
	ev, err := verImpl.NewEventFromTrustedJSON(built.Event, false)
	if err != nil {
		return "", err
	}
	var stripped []gomatrixserverlib.InviteStrippedState
	for _, raw := range built.InviteRoomState {
		var st gomatrixserverlib.InviteStrippedState
		if err := json.Unmarshal(raw, &st); err == nil {
			stripped = append(stripped, st)
		}
	}
	req, err := fclient.NewInviteV2Request(ev, stripped)
	if err != nil {
		return "", err
	}
	res, err := j.client.fed.SendInviteV2(ctx, j.self.ServerName, target.Domain(), req)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInviteRefused, remoteError("invite", err))
	}
	signed, err := verImpl.NewEventFromUntrustedJSON(res.Event)
	if err != nil || signed.EventID() != ev.EventID() {
		return "", fmt.Errorf("%w: it answered another event", ErrInviteRefused)
	}
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, signed, j.keys, userIDForSender); err != nil {
		return "", fmt.Errorf("%w: its signature does not verify: %w", ErrInviteRefused, err)
	}
	taken, err := inputEvent(ctx, j.rooms, roomID, j.self.ServerName, true, &messages.InputEvent{Json: signed.JSON()})
	if err != nil {
		return "", err
	}
	if taken.Rejected != "" || taken.SoftFailed || len(taken.MissingAuth)+len(taken.MissingPrev) > 0 {
		return "", &RoomError{Err: &messages.Error{Errcode: "M_FORBIDDEN", Message: inputRefusal(taken), HttpStatus: http.StatusForbidden}}
	}
	return signed.EventID(), nil
}

// RoomError is a room's refusal met on the way of a handshake.
type RoomError struct{ Err *messages.Error }

func (e *RoomError) Error() string {
	if e.Err == nil {
		return "federation: the room gave no answer"
	}
	return "federation: " + e.Err.Errcode + ": " + e.Err.Message
}

// Leave rejects a local user's invite to a room on another server (or
// leaves a room this server only has a stub of), through the first of
// servers that lets it, and stores the leave in the stub.
func (j *Memberships) Leave(ctx context.Context, roomID, userID string, servers []spec.ServerName) (string, error) {
	return firstServer(servers, j.self.ServerName, func(server spec.ServerName) (string, error) {
		fed := j.client.fed
		made, err := fed.MakeLeave(ctx, j.self.ServerName, server, roomID, userID)
		if err != nil {
			return "", remoteError("make_leave", err)
		}
		leave, err := j.fromTemplate(roomID, userID, spec.Leave, made.LeaveEvent, made.RoomVersion, nil)
		if err != nil {
			return "", err
		}
		if err := fed.SendLeave(ctx, j.self.ServerName, server, leave); err != nil {
			return "", remoteError("send_leave", err)
		}
		reply, err := j.rooms.RequestRoom(ctx, roomID, &messages.StoreRemoteMembership{
			RoomId: roomID, RoomVersion: string(made.RoomVersion), Event: leave.JSON(),
		})
		if err != nil {
			return "", err
		}
		if sr, _ := reply.(*messages.StoreRemoteMembershipReply); sr == nil || sr.Error != nil {
			return "", &RoomError{Err: sr.GetError()}
		}
		return leave.EventID(), nil
	}, j.log.With().Str("room_id", roomID).Logger())
}
