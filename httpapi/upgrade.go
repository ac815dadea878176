package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/rooms"
)

// Room upgrades: POST /rooms/{roomId}/upgrade replaces a room by a new one
// in another room version, following the spec's server behaviour. Both
// rooms change only through their actors: the new room is created with
// its copied state in one CreateRoom command, the old room gets its
// tombstone, canonical alias and power levels as ordinary sends. The
// directory (aliases, publication) moves in one storage transaction.

// tombstoneBody is the server-defined message of the m.room.tombstone.
const tombstoneBody = "This room has been replaced"

// upgradeRoomHandler: POST /rooms/{roomId}/upgrade {new_version}.
func (s *Server) upgradeRoomHandler(r *http.Request) (int, any, error) {
	ctx := r.Context()
	c := callerFrom(ctx)
	var body struct {
		NewVersion *string `json:"new_version"`
		// additional_creators applies to room version 12 and later only,
		// which this server does not support: ignored, as the spec says
		// for versions without additional creators.
	}
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if body.NewVersion == nil {
		return 0, nil, errMissingParam("new_version is required")
	}
	version := *body.NewVersion
	if err := checkRoomVersion(version); err != nil {
		return 0, nil, err
	}
	oldRoomID := pathParam(r, "roomId")
	a, err := s.accessFor(ctx, oldRoomID, c.UserID)
	if err != nil {
		return 0, nil, err
	}
	if a.current != "join" {
		return 0, nil, errForbidden("You must be joined to the room to upgrade it")
	}
	// The old room's actor decides when the tombstone is sent; asking the
	// projection first keeps a refused upgrade from leaving a new room.
	ok, err := s.canSendState(ctx, a.nid, c.UserID, rooms.MRoomTombstone)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, errForbidden("You cannot upgrade this room: your power level does not allow sending m.room.tombstone")
	}

	release, err := s.beginUpgrade(oldRoomID)
	if err != nil {
		return 0, nil, err
	}
	defer release()

	up, err := s.upgradeOf(ctx, a, version)
	if err != nil {
		return 0, nil, err
	}
	profile, err := s.profileOf(ctx, c.Localpart)
	if err != nil {
		return 0, nil, err
	}
	events, err := up.Compose(c.UserID, rooms.CreatorProfile{DisplayName: profile.DisplayName, AvatarURL: profile.AvatarURL})
	if err != nil {
		return 0, nil, roomError(err)
	}
	newRoomID := s.newRoomID()
	if err := s.createRoom(ctx, newRoomID, version, events); err != nil {
		return 0, nil, err
	}
	log := s.log.With().Str("room_id", oldRoomID).Str("replacement_room", newRoomID).Str("user_id", c.UserID).Logger()
	logRoomID(ctx, newRoomID)

	// The tombstone before the aliases: if the old room refuses it (the
	// upgrader's power changed meanwhile), nothing but an unreferenced
	// new room is left behind.
	tombstone, _ := json.Marshal(map[string]string{"body": tombstoneBody, "replacement_room": newRoomID})
	if _, err := s.sendState(ctx, oldRoomID, c, rooms.MRoomTombstone, tombstone); err != nil {
		log.Warn().Err(err).Msg("room upgrade: the old room refused the tombstone; the new room stays unreferenced")
		return 0, nil, err
	}
	// The tombstone is the upgrade's commit point: clients follow it from
	// now on, so what remains cannot fail the request, nor stop when the
	// client goes away. The aliases and the listing are logged when they
	// cannot move; the spec's "if possible" changes of the old room may
	// lack the upgrader's power. Both are made to the old room's state as
	// it is now, not as it was copied.
	ctx = context.WithoutCancel(ctx)
	moved, err := s.store.ReplaceRoomInDirectory(ctx, oldRoomID, newRoomID)
	if err != nil {
		log.Error().Err(err).Msg("room upgrade: the aliases and directory listing stay with the old room")
	}
	if _, kept, ok := rooms.SplitCanonicalAlias(s.currentContent(ctx, a.nid, spec.MRoomCanonicalAlias), s.opts.ServerName); ok {
		content, _ := json.Marshal(kept)
		if _, err := s.sendState(ctx, oldRoomID, c, spec.MRoomCanonicalAlias, content); err != nil {
			log.Info().Err(err).Msg("room upgrade: the old room keeps the moved aliases in its canonical alias")
		}
	}
	if restricted, changed := rooms.RestrictedPowerLevels(s.currentContent(ctx, a.nid, spec.MRoomPowerLevels)); changed {
		if _, err := s.sendState(ctx, oldRoomID, c, spec.MRoomPowerLevels, restricted); err != nil {
			log.Info().Err(err).Msg("room upgrade: the old room's power levels could not be restricted")
		}
	}
	log.Info().Strs("aliases", moved).Str("room_version", version).Msg("room upgraded")
	return http.StatusOK, map[string]string{"replacement_room": newRoomID}, nil
}

// beginUpgrade claims a room for one upgrade at a time on this node: two
// at once would each create a room, and the tombstone could end up
// naming the one the aliases did not move to. The second is refused, as
// Synapse refuses it. (Across nodes of a cluster this is not enforced.)
func (s *Server) beginUpgrade(roomID string) (release func(), err error) {
	if _, busy := s.upgrading.LoadOrStore(roomID, struct{}{}); busy {
		return nil, matrixError(http.StatusBadRequest, "M_UNKNOWN", "An upgrade of this room is already in progress")
	}
	return func() { s.upgrading.Delete(roomID) }, nil
}

// upgradeOf reads what an upgrade copies from the old room: the state
// events it looks at (one by one: a room with 10^5 members must not load
// them all) and the newest event.
func (s *Server) upgradeOf(ctx context.Context, a *roomAccess, version string) (*rooms.Upgrade, error) {
	up := &rooms.Upgrade{OldRoomID: a.roomID, NewVersion: version, ServerName: s.opts.ServerName}
	for _, typ := range rooms.UpgradeReads() {
		c, err := s.currentContentOrErr(ctx, a.nid, typ)
		if err != nil {
			return nil, err
		}
		if c != nil {
			up.OldState = append(up.OldState, rooms.InitialStateDef{Type: typ, Content: c})
		}
	}
	last, err := s.store.RoomEvents(ctx, a.nid, 0, a.bound, 1, false)
	if err != nil {
		return nil, err
	}
	if len(last) == 0 {
		return nil, errors.New("httpapi: room with state but no events")
	}
	up.LastEventID = last[0].EventID
	return up, nil
}

// currentContent is the content of a room's (typ, "") state event as
// clients see it; nil when there is none or it cannot be read.
func (s *Server) currentContent(ctx context.Context, nid persistence.RoomNID, typ string) json.RawMessage {
	c, _ := s.currentContentOrErr(ctx, nid, typ)
	return c
}

// currentContentOrErr is currentContent for callers that must tell a
// missing event (nil, nil) from a failed read.
func (s *Server) currentContentOrErr(ctx context.Context, nid persistence.RoomNID, typ string) (json.RawMessage, error) {
	ev, err := s.stateEventCurrent(ctx, nid, typ, "")
	if err != nil || ev == nil {
		return nil, err
	}
	ce, err := toClientEvent(ev, false)
	if err != nil {
		return nil, err
	}
	return ce.Content, nil
}

// sendState sends a state event with an empty state key as the caller.
func (s *Server) sendState(ctx context.Context, roomID string, c *caller, eventType string, content []byte) (string, error) {
	empty := ""
	return s.sendEvent(ctx, roomID, c.DeviceID, "",
		&messages.EventContent{Sender: c.UserID, Type: eventType, StateKey: &empty, Content: content})
}
