package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/rooms"
)

// roomBusyRetryMS is how long a client is asked to wait when a room's queue
// is full: about the time a batch commit takes to drain it.
const roomBusyRetryMS = 200

// requestRoom sends one command to a room's actor, bounded by the
// configured timeout, and maps transport failures to Matrix errors.
func (s *Server) requestRoom(ctx context.Context, roomID string, msg proto.Message) (proto.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	reply, err := s.rooms.RequestRoom(ctx, roomID, msg)
	if errors.Is(err, actors.ErrRoomBusy) {
		// Back-pressure: the room's queue is full; ask the client to come back.
		e := matrixError(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "the room is busy; retry shortly")
		e.RetryAfterMS = roomBusyRetryMS
		return nil, e
	}
	if err != nil {
		return nil, matrixError(http.StatusServiceUnavailable, "M_UNKNOWN", "the room did not answer in time; retry the request")
	}
	return reply, nil
}

func replyError(e *messages.Error) error {
	if e == nil {
		return nil
	}
	status := int(e.HttpStatus)
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return matrixError(status, e.Errcode, e.Message)
}

// sendEvent asks the room to build, authorise and store one event.
func (s *Server) sendEvent(ctx context.Context, roomID, deviceID, txnID string, ev *messages.EventContent) (string, error) {
	if err := checkRoomID(roomID); err != nil {
		return "", err
	}
	reply, err := s.requestRoom(ctx, roomID, &messages.SendEvent{RoomId: roomID, Event: ev, DeviceId: deviceID, TxnId: txnID})
	if err != nil {
		return "", err
	}
	r, ok := reply.(*messages.SendEventReply)
	if !ok {
		return "", errors.New("httpapi: unexpected reply to SendEvent")
	}
	if err := replyError(r.Error); err != nil {
		return "", err
	}
	return r.EventId, nil
}

func checkRoomID(roomID string) error {
	if _, err := spec.NewRoomID(roomID); err != nil {
		return errInvalidParam("invalid room ID")
	}
	return nil
}

// sendHandler: PUT /rooms/{roomId}/send/{eventType}/{txnId}.
func (s *Server) sendHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	body, err := readJSONObject(r)
	if err != nil {
		return 0, nil, err
	}
	id, err := s.sendEvent(r.Context(), pathParam(r, "roomId"), c.DeviceID, pathParam(r, "txnId"),
		&messages.EventContent{Sender: c.UserID, Type: pathParam(r, "eventType"), Content: body})
	if err != nil {
		return 0, nil, err
	}
	logEventID(r.Context(), id)
	return http.StatusOK, map[string]string{"event_id": id}, nil
}

// putStateHandler: PUT /rooms/{roomId}/state/{eventType}/{stateKey}.
func (s *Server) putStateHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	body, err := readJSONObject(r)
	if err != nil {
		return 0, nil, err
	}
	stateKey := pathParam(r, "stateKey")
	if pathParam(r, "eventType") == spec.MRoomCanonicalAlias && stateKey == "" {
		if err := s.checkCanonicalAlias(r.Context(), pathParam(r, "roomId"), body); err != nil {
			return 0, nil, err
		}
	}
	id, err := s.sendEvent(r.Context(), pathParam(r, "roomId"), c.DeviceID, "",
		&messages.EventContent{Sender: c.UserID, Type: pathParam(r, "eventType"), StateKey: &stateKey, Content: body})
	if err != nil {
		return 0, nil, err
	}
	logEventID(r.Context(), id)
	return http.StatusOK, map[string]string{"event_id": id}, nil
}

// createRoomHandler: POST /createRoom.
func (s *Server) createRoomHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	var req rooms.CreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	version := req.RoomVersion
	if version == "" {
		version = s.opts.DefaultRoomVersion
	}
	if err := checkRoomVersion(version); err != nil {
		return 0, nil, err
	}
	alias, err := s.newRoomAlias(r.Context(), req.RoomAliasName)
	if err != nil {
		return 0, nil, err
	}
	profile, err := s.profileOf(r.Context(), c.Localpart)
	if err != nil {
		return 0, nil, err
	}
	events, err := req.Compose(c.UserID, version, rooms.CreatorProfile{DisplayName: profile.DisplayName, AvatarURL: profile.AvatarURL})
	if err != nil {
		return 0, nil, roomError(err)
	}
	events = withCanonicalAlias(events, alias)
	roomID := s.newRoomID()
	release, err := s.reserveRoomAlias(r.Context(), alias, roomID, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	if err := s.createRoom(r.Context(), roomID, version, events); err != nil {
		release()
		return 0, nil, err
	}
	logRoomID(r.Context(), roomID)
	if err := s.publishNewRoom(r.Context(), roomID, req.Visibility); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"room_id": roomID}, nil
}

// checkRoomVersion refuses a room version this server cannot create.
func checkRoomVersion(version string) error {
	if !rooms.SupportedVersions[version] {
		return matrixError(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "This server does not support room version "+strconv.Quote(version))
	}
	return nil
}

// newRoomID returns a fresh room ID on this server.
func (s *Server) newRoomID() string { return "!" + randomLetters(18) + ":" + s.opts.ServerName }

// createRoom asks a new room's actor to build, authorise and store its
// initial events, all in one commit.
func (s *Server) createRoom(ctx context.Context, roomID, version string, events []*messages.EventContent) error {
	reply, err := s.requestRoom(ctx, roomID, &messages.CreateRoom{RoomId: roomID, RoomVersion: version, Events: events})
	if err != nil {
		return err
	}
	cr, ok := reply.(*messages.CreateRoomReply)
	if !ok {
		return errors.New("httpapi: unexpected reply to CreateRoom")
	}
	return replyError(cr.Error)
}

func roomError(err error) error {
	var re *rooms.Error
	if errors.As(err, &re) {
		return matrixError(re.Status, re.ErrCode, re.Message)
	}
	return err
}

// profileOf returns a local user's profile (empty when they have none).
func (s *Server) profileOf(ctx context.Context, localpart string) (persistence.Profile, error) {
	p, err := s.store.GetProfile(ctx, localpart)
	if errors.Is(err, persistence.ErrNotFound) {
		return persistence.Profile{}, nil
	}
	return p, err
}

// localProfileOf returns the profile of a user ID when it is a local user.
func (s *Server) localProfileOf(ctx context.Context, userID string) (persistence.Profile, error) {
	localpart, server, ok := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	if !ok || server != s.opts.ServerName {
		return persistence.Profile{}, nil
	}
	return s.profileOf(ctx, localpart)
}

type membershipBody struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// membershipHandler serves join, leave, invite, kick, ban and unban: each
// is one m.room.member event the room authorises.
func (s *Server) membershipHandler(action string) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		c := callerFrom(r.Context())
		roomID := pathParam(r, "roomId")
		var aliasServers []string // the servers the alias's server says are in the room
		if roomID == "" {
			roomID = pathParam(r, "roomIdOrAlias")
			if strings.HasPrefix(roomID, "#") {
				var err error
				if roomID, aliasServers, err = s.resolveRoomAlias(r.Context(), roomID); err != nil {
					return 0, nil, err
				}
			}
		}
		var body membershipBody
		if err := decodeJSON(r, &body); err != nil {
			return 0, nil, err
		}
		target, membership := c.UserID, ""
		switch action {
		case "join":
			membership = "join"
		case "leave":
			membership = "leave"
		case "invite", "kick", "ban", "unban":
			if body.UserID == "" {
				return 0, nil, errMissingParam("user_id is required")
			}
			if _, err := spec.NewUserID(body.UserID, true); err != nil {
				return 0, nil, errInvalidParam("invalid user_id")
			}
			target = body.UserID
			membership = map[string]string{"invite": "invite", "kick": "leave", "ban": "ban", "unban": "leave"}[action]
		}
		if action == "unban" || action == "kick" {
			// Kicking needs the target in the room and unbanning a ban:
			// the auth rules alone would let either turn into the other.
			m, err := s.currentMembership(r.Context(), roomID, target)
			if err != nil {
				return 0, nil, err
			}
			if action == "unban" && m != "ban" {
				return 0, nil, errForbidden("user is not banned")
			}
			if action == "kick" && m != "join" && m != "invite" && m != "knock" {
				return 0, nil, errForbidden("user is not in the room")
			}
		}
		content := map[string]any{"membership": membership}
		if body.Reason != "" {
			content["reason"] = body.Reason
		}
		if membership == "join" || membership == "invite" {
			p, err := s.localProfileOf(r.Context(), target)
			if err != nil {
				return 0, nil, err
			}
			if p.DisplayName != "" {
				content["displayname"] = p.DisplayName
			}
			if p.AvatarURL != "" {
				content["avatar_url"] = p.AvatarURL
			}
		}
		if action == "join" || action == "leave" {
			remote, err := s.notResident(r.Context(), roomID)
			if err != nil {
				return 0, nil, err
			}
			switch {
			case remote && action == "join":
				return s.joinRemote(r, roomID, aliasServers, c.UserID, content)
			case remote:
				return s.leaveRemote(r, roomID, c.UserID)
			}
		}
		b, _ := json.Marshal(content)
		if action == "invite" && s.opts.RemoteMemberships != nil && !strings.HasSuffix(target, ":"+s.opts.ServerName) {
			return s.inviteRemote(r, roomID, &messages.EventContent{Sender: c.UserID, Type: spec.MRoomMember, StateKey: &target, Content: b})
		}
		if _, err := s.sendEvent(r.Context(), roomID, c.DeviceID, "",
			&messages.EventContent{Sender: c.UserID, Type: spec.MRoomMember, StateKey: &target, Content: b}); err != nil {
			return 0, nil, err
		}
		if action == "join" {
			s.carryOverUpgradeSettings(r.Context(), roomID, c.UserID)
			return http.StatusOK, map[string]string{"room_id": roomID}, nil
		}
		return http.StatusOK, struct{}{}, nil
	}
}

// currentMembership reads a user's membership from the projection ("" if none).
func (s *Server) currentMembership(ctx context.Context, roomID, userID string) (string, error) {
	if err := checkRoomID(roomID); err != nil {
		return "", err
	}
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", errNotFound("unknown room")
	}
	if err != nil {
		return "", err
	}
	m, err := s.store.MembershipOf(ctx, nid, userID)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return m.Membership, nil
}

// forgetHandler: POST /rooms/{roomId}/forget.
func (s *Server) forgetHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	roomID := pathParam(r, "roomId")
	if err := checkRoomID(roomID); err != nil {
		return 0, nil, err
	}
	nid, _, err := s.store.RoomInfo(r.Context(), roomID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("unknown room")
	}
	if err != nil {
		return 0, nil, err
	}
	m, err := s.store.MembershipOf(r.Context(), nid, c.UserID)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("you were never in this room")
	}
	if err != nil {
		return 0, nil, err
	}
	if m.Membership == "join" || m.Membership == "invite" || m.Membership == "knock" {
		return 0, nil, matrixError(http.StatusBadRequest, "M_UNKNOWN", "leave the room before forgetting it")
	}
	if err := s.store.ForgetRoom(r.Context(), nid, c.UserID); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomLetters returns n random ASCII letters (for room and device IDs).
func randomLetters(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
