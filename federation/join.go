package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/rooms"
)

// Joins, both ways. Inbound, this server is the resident server of a
// room a remote user joins: make_join gives a template built by the room's
// actor, send_join takes the signed join as the room's input, then answers
// with the state before it and the auth chain. Outbound, a local user joins
// a remote room: the same two calls to a resident server, its answer
// checked (CheckSendJoinResponse: signatures, and every event allowed by
// its auth events) and stored by the room's actor.

// RoomEvents is what the room endpoints read of storage.
type RoomEvents interface {
	RoomInfo(ctx context.Context, roomID string) (persistence.RoomNID, string, error)
	EventByID(ctx context.Context, eventID string) (*persistence.StoredEvent, error)
	SnapshotEvents(ctx context.Context, snapshot persistence.StateSnapshotNID) ([]persistence.StoredEvent, error)
}

// GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=
func (s *Server) makeJoin(w http.ResponseWriter, r *http.Request) {
	roomID, userID, ok := s.membershipParams(w, r)
	if !ok {
		return
	}
	_, version, err := s.roomEvents.RoomInfo(r.Context(), roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "This server is not in the room")
		return
	}
	if err != nil {
		s.internalError(w, r, err, "reading the room")
		return
	}
	versions := r.URL.Query()["ver"]
	if len(versions) == 0 {
		versions = []string{"1"} // the spec's default
	}
	if !slices.Contains(versions, version) {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "Your server does not support the room's version",
			"room_version": version,
		})
		return
	}
	s.membershipTemplate(w, r, roomID, userID, spec.Join)
}

// membershipTemplate answers make_join and make_leave with the room's
// template.
func (s *Server) membershipTemplate(w http.ResponseWriter, r *http.Request, roomID, userID, membership string) {
	reply, err := s.rooms.RequestRoom(r.Context(), roomID, &messages.MakeMembership{RoomId: roomID, UserId: userID, Membership: membership})
	if err != nil {
		s.roomUnavailable(w, r, err)
		return
	}
	mm, _ := reply.(*messages.MakeMembershipReply)
	if mm == nil || mm.Error != nil {
		writeRoomError(w, mm.GetError())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"room_version": mm.RoomVersion, "event": json.RawMessage(mm.Event)})
}

// membershipParams reads {roomId} and {userId}: the user must be of the
// requesting server.
func (s *Server) membershipParams(w http.ResponseWriter, r *http.Request) (roomID, userID string, ok bool) {
	roomID, userID = chi.URLParam(r, "roomId"), chi.URLParam(r, "userId")
	if _, err := spec.NewRoomID(roomID); err != nil {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "Not a room ID")
		return "", "", false
	}
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "Not a user ID")
		return "", "", false
	}
	if uid.Domain() != OriginFrom(r.Context()) {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The user is not of the requesting server")
		return "", "", false
	}
	return roomID, userID, true
}

// PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}
func (s *Server) sendJoin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ev, ok := s.readMembershipEvent(w, r, spec.Join)
	if !ok {
		return
	}
	roomID := ev.RoomID().String()
	res, ok := s.inputOne(w, r, roomID, OriginFrom(ctx), ev)
	if !ok {
		return
	}
	if res.Rejected != "" || res.SoftFailed || len(res.MissingAuth) > 0 || len(res.MissingPrev) > 0 {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The join is not allowed: "+inputRefusal(res))
		return
	}
	// The joining server is in the room now: it may read the state.
	room, stored, ferr := s.roomEvent(r, ev.EventID())
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	stateEvs, chainEvs, ferr := s.stateAt(ctx, room, stored)
	if ferr != nil {
		writeFedError(w, r, ferr)
		return
	}
	state, err := pdus(room, stateEvs)
	if err == nil {
		var authChain []json.RawMessage
		if authChain, err = pdus(room, chainEvs); err == nil {
			writePDUs(w, map[string]any{
				"origin":          s.self.ServerName,
				"state":           state,
				"auth_chain":      authChain,
				"event":           json.RawMessage(ev.JSON()),
				"members_omitted": false,
			})
			return
		}
	}
	s.internalError(w, r, err, "reading the state before a join")
}

// readPDU reads a request body that is one event of the room version.
func (s *Server) readPDU(w http.ResponseWriter, r *http.Request, version string) (gomatrixserverlib.PDU, bool) {
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		writeError(w, http.StatusBadRequest, "M_NOT_JSON", "The body is not JSON")
		return nil, false
	}
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "Unsupported room version")
		return nil, false
	}
	ev, err := verImpl.NewEventFromUntrustedJSON(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The event is malformed: "+err.Error())
		return nil, false
	}
	return ev, true
}

// inputOne hands one remote event to its room, to be sent on to the
// room's other servers, answering the request when the room does not take it.
func (s *Server) inputOne(w http.ResponseWriter, r *http.Request, roomID string, origin spec.ServerName, ev gomatrixserverlib.PDU) (*messages.InputResult, bool) {
	res, err := inputEvent(r.Context(), s.rooms, roomID, origin, true, &messages.InputEvent{Json: ev.JSON()})
	var roomErr *RoomError
	switch {
	case errors.As(err, &roomErr):
		writeRoomError(w, roomErr.Err)
		return nil, false
	case err != nil:
		s.roomUnavailable(w, r, err)
		return nil, false
	}
	return res, true
}

func inputRefusal(res *messages.InputResult) string {
	switch {
	case res.Rejected != "":
		return res.Rejected
	case res.SoftFailed:
		return "the room's current state does not allow it"
	default:
		return "its prev or auth events are unknown here"
	}
}

func senderServer(ev gomatrixserverlib.PDU) spec.ServerName {
	uid, err := spec.NewUserID(string(ev.SenderID()), true)
	if err != nil {
		return ""
	}
	return uid.Domain()
}

// userIDForSender: sender IDs are user IDs in the room versions Soma
// supports.
func userIDForSender(_ spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error, what string) {
	zerolog.Ctx(r.Context()).Error().Err(err).Msg(what)
	writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Internal error")
}

func (s *Server) roomUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	zerolog.Ctx(r.Context()).Warn().Err(err).Msg("the room did not answer")
	writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "The room is busy; retry later")
}

// writeRoomError answers with the room's refusal.
func writeRoomError(w http.ResponseWriter, e *messages.Error) {
	if e == nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "The room gave no answer")
		return
	}
	status := int(e.HttpStatus)
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeError(w, status, e.Errcode, e.Message)
}

// Memberships changes local users' memberships of rooms on other servers
// (and of remote users in rooms here, for invites): the Server-Server
// API's join, leave and invite handshakes.
type Memberships struct {
	self   *Identity
	client *Client
	keys   *KeyRing
	rooms  actors.RoomRouter
	log    zerolog.Logger
}

// NewMemberships wires the outbound membership handshakes.
func NewMemberships(self *Identity, client *Client, keys *KeyRing, rooms actors.RoomRouter, log zerolog.Logger) *Memberships {
	return &Memberships{self: self, client: client, keys: keys, rooms: rooms, log: log}
}

// ErrJoinFailed wraps the reasons no server let the user join.
var ErrJoinFailed = errors.New("federation: could not join the room through any server")

// ErrUnsupportedRoomVersion is returned for a room whose version this
// server cannot join.
var ErrUnsupportedRoomVersion = errors.New("federation: the room's version is not supported here")

// Join joins userID (local) to roomID through the first of servers that
// lets it, with content as the join's content (membership is set), and
// returns the join's event ID once the room is stored here.
func (j *Memberships) Join(ctx context.Context, roomID, userID string, content map[string]any, servers []spec.ServerName) (string, error) {
	id, err := firstServer(servers, j.self.ServerName, func(server spec.ServerName) (string, error) {
		return j.joinVia(ctx, roomID, userID, content, server)
	}, j.log.With().Str("room_id", roomID).Logger())
	if err != nil && !errors.Is(err, ErrUnsupportedRoomVersion) {
		err = fmt.Errorf("%w: %w", ErrJoinFailed, err)
	}
	return id, err
}

// firstServer tries servers (but self) in turn until one does, and
// returns all their errors otherwise; an unsupported room version ends
// the search.
func firstServer(servers []spec.ServerName, self spec.ServerName, try func(spec.ServerName) (string, error), log zerolog.Logger) (string, error) {
	var errs []error
	for _, server := range servers {
		if server == self {
			continue
		}
		id, err := try(server)
		if err == nil {
			return id, nil
		}
		if errors.Is(err, ErrUnsupportedRoomVersion) {
			return "", err
		}
		log.Info().Err(err).Str("server", string(server)).Msg("a membership handshake through this server failed")
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
	}
	if len(errs) == 0 {
		return "", errors.New("no server to try")
	}
	return "", errors.Join(errs...)
}

// fromTemplate signs the membership event a resident server's make_join
// or make_leave template describes, for userID with content.
func (j *Memberships) fromTemplate(roomID, userID, membership string, proto gomatrixserverlib.ProtoEvent, version gomatrixserverlib.RoomVersion, content map[string]any) (gomatrixserverlib.PDU, error) {
	if !rooms.SupportedVersions[string(version)] {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedRoomVersion, version)
	}
	verImpl := gomatrixserverlib.MustGetRoomVersion(version)
	proto.Type, proto.RoomID, proto.Redacts = spec.MRoomMember, roomID, ""
	proto.SenderID, proto.StateKey = userID, &userID
	merged := map[string]any{}
	_ = json.Unmarshal(proto.Content, &merged)
	for k, v := range content {
		merged[k] = v
	}
	merged["membership"] = membership
	builder := verImpl.NewEventBuilderFromProtoEvent(&proto)
	if err := builder.SetContent(merged); err != nil {
		return nil, err
	}
	if err := builder.SetUnsigned(struct{}{}); err != nil {
		return nil, err
	}
	ev, err := builder.Build(time.Now(), j.self.ServerName, j.self.Key.KeyID, j.self.Key.Private)
	if err != nil {
		return nil, fmt.Errorf("building the %s: %w", membership, err)
	}
	return ev, nil
}

func (j *Memberships) joinVia(ctx context.Context, roomID, userID string, content map[string]any, server spec.ServerName) (string, error) {
	fed := j.client.fed
	made, err := fed.MakeJoin(ctx, j.self.ServerName, server, roomID, userID)
	if err != nil {
		return "", remoteError("make_join", err)
	}
	version := made.RoomVersion
	join, err := j.fromTemplate(roomID, userID, spec.Join, made.JoinEvent, version, content)
	if err != nil {
		return "", err
	}
	verImpl := gomatrixserverlib.MustGetRoomVersion(version)
	sent, err := fed.SendJoin(ctx, j.self.ServerName, server, join)
	if err != nil {
		return "", remoteError("send_join", err)
	}
	// The resident server may countersign the join (restricted rooms).
	if len(sent.Event) > 0 {
		if signed, err := verImpl.NewEventFromUntrustedJSON(sent.Event); err == nil && signed.EventID() == join.EventID() {
			join = signed
		}
	}
	checked, err := gomatrixserverlib.CheckSendJoinResponse(ctx, version, &sent, j.keys, join,
		func(gomatrixserverlib.RoomVersion, []string) ([]gomatrixserverlib.PDU, error) {
			return nil, errors.New("the send_join answer lacks auth events")
		}, userIDForSender)
	if err != nil {
		return "", fmt.Errorf("checking the send_join answer: %w", err)
	}
	msg := &messages.JoinRemoteRoom{RoomId: roomID, RoomVersion: string(version), JoinEvent: join.JSON()}
	for _, raw := range checked.GetStateEvents() {
		msg.State = append(msg.State, raw)
	}
	for _, raw := range checked.GetAuthEvents() {
		msg.AuthChain = append(msg.AuthChain, raw)
	}
	reply, err := j.rooms.RequestRoom(ctx, roomID, msg)
	if err != nil {
		return "", err
	}
	jr, _ := reply.(*messages.JoinRemoteRoomReply)
	if jr == nil || jr.Error != nil {
		return "", fmt.Errorf("storing the joined room: %s", jr.GetError().GetMessage())
	}
	return jr.EventId, nil
}
