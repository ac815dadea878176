package httpapi

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
)

// afterProfileChange reflects a user's new display name and avatar in the
// member events of every room they are joined to, as the spec asks: one
// m.room.member event per room, sent through each room's actor. An error
// is logged by the caller: the profile change itself stands.
func (s *Server) afterProfileChange(ctx context.Context, c *caller) error {
	// The profile is stored: finish the rooms even if the client goes away.
	ctx = context.WithoutCancel(ctx)
	profile, err := s.profileOf(ctx, c.Localpart)
	if err != nil {
		return err
	}
	ms, err := s.store.MembershipsForUser(ctx, c.UserID)
	if err != nil {
		return err
	}
	content := map[string]any{"membership": "join"}
	if profile.DisplayName != "" {
		content["displayname"] = profile.DisplayName
	}
	if profile.AvatarURL != "" {
		content["avatar_url"] = profile.AvatarURL
	}
	body, err := json.Marshal(content)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range ms {
		if m.Membership != "join" {
			continue
		}
		stateKey := c.UserID
		_, err := s.sendEvent(ctx, m.RoomID, c.DeviceID, "",
			&messages.EventContent{Sender: c.UserID, Type: spec.MRoomMember, StateKey: &stateKey, Content: body})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
