package rooms

import (
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
)

// CreateRequest is a client's /createRoom request, validated by the caller's
// JSON decoding; Compose turns it into the room's initial events.
type CreateRequest struct {
	Visibility                string            `json:"visibility"`
	Name                      *string           `json:"name"`
	Topic                     *string           `json:"topic"`
	Invite                    []string          `json:"invite"`
	RoomVersion               string            `json:"room_version"`
	CreationContent           json.RawMessage   `json:"creation_content"`
	InitialState              []InitialStateDef `json:"initial_state"`
	Preset                    string            `json:"preset"`
	IsDirect                  bool              `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage   `json:"power_level_content_override"`
	RoomAliasName             string            `json:"room_alias_name"`
}

// InitialStateDef is one entry of initial_state.
type InitialStateDef struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// CreatorProfile is what the creator's join event carries.
type CreatorProfile struct {
	DisplayName string
	AvatarURL   string
}

type presetRules struct {
	joinRule       string
	guestAccess    string // "" means no m.room.guest_access event
	inviteesAreAll bool   // trusted_private_chat: invitees get the creator's power
}

var presets = map[string]presetRules{
	"private_chat":         {joinRule: "invite", guestAccess: "can_join"},
	"trusted_private_chat": {joinRule: "invite", guestAccess: "can_join", inviteesAreAll: true},
	"public_chat":          {joinRule: "public"},
}

// Compose returns the initial events of a new room in the spec's order:
// create, the creator's join, power levels, preset rules, initial_state,
// name, topic, invites.
func (req *CreateRequest) Compose(creator, version string, profile CreatorProfile) ([]*messages.EventContent, error) {
	preset := req.Preset
	if preset == "" {
		preset = "private_chat"
		if req.Visibility == "public" {
			preset = "public_chat"
		}
	}
	rules, ok := presets[preset]
	if !ok {
		return nil, &Error{Status: 400, ErrCode: "M_BAD_JSON", Message: fmt.Sprintf("unknown preset %q", preset)}
	}
	for _, u := range req.Invite {
		if _, err := spec.NewUserID(u, true); err != nil {
			return nil, &Error{Status: 400, ErrCode: "M_INVALID_PARAM", Message: fmt.Sprintf("invalid user ID to invite: %q", u)}
		}
	}

	b := &initialEvents{creator: creator}
	create := map[string]any{}
	if len(req.CreationContent) > 0 && string(req.CreationContent) != "null" {
		if err := json.Unmarshal(req.CreationContent, &create); err != nil {
			return nil, badJSON("creation_content must be an object")
		}
	}
	levels, err := req.powerLevels(creator, rules)
	if err != nil {
		return nil, err
	}
	if err := b.start(version, create, profile); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		typ     string
		content any
	}{
		{spec.MRoomPowerLevels, levels},
		{spec.MRoomJoinRules, map[string]any{"join_rule": rules.joinRule}},
		{spec.MRoomHistoryVisibility, map[string]any{"history_visibility": "shared"}},
	} {
		if err := b.add(s.typ, "", s.content); err != nil {
			return nil, err
		}
	}
	if rules.guestAccess != "" {
		if err := b.add(spec.MRoomGuestAccess, "", map[string]any{"guest_access": rules.guestAccess}); err != nil {
			return nil, err
		}
	}
	for _, is := range req.InitialState {
		if is.Type == "" || is.Type == spec.MRoomCreate || is.Type == spec.MRoomMember {
			return nil, badJSON("initial_state may not hold create or member events, and needs a type")
		}
		var content map[string]any
		if err := json.Unmarshal(is.Content, &content); err != nil || content == nil {
			return nil, badJSON("initial_state content for %s must be an object", is.Type)
		}
		if err := b.add(is.Type, is.StateKey, content); err != nil {
			return nil, err
		}
	}
	if req.Name != nil {
		if err := b.add(spec.MRoomName, "", map[string]any{"name": *req.Name}); err != nil {
			return nil, err
		}
	}
	if req.Topic != nil {
		if err := b.add(spec.MRoomTopic, "", map[string]any{"topic": *req.Topic}); err != nil {
			return nil, err
		}
	}
	for _, u := range req.Invite {
		content := map[string]any{"membership": "invite"}
		if req.IsDirect {
			content["is_direct"] = true
		}
		if err := b.add(spec.MRoomMember, u, content); err != nil {
			return nil, err
		}
	}
	return b.events, nil
}

// initialEvents collects a new room's first events, all sent by its
// creator: /createRoom and room upgrades both start a room this way.
type initialEvents struct {
	creator string
	events  []*messages.EventContent
}

// add appends one state event.
func (b *initialEvents) add(typ, stateKey string, content any) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return badJSON("%s", err)
	}
	b.events = append(b.events, &messages.EventContent{Sender: b.creator, Type: typ, StateKey: &stateKey, Content: raw})
	return nil
}

// start adds the m.room.create event (create is its content, completed
// with the room version, and the creator where the version still wants
// one) and the creator's join with their profile.
func (b *initialEvents) start(version string, create map[string]any, profile CreatorProfile) error {
	create["room_version"] = version
	if version == "10" {
		create["creator"] = b.creator // implied by the sender from v11 on
	} else {
		delete(create, "creator")
	}
	member := map[string]any{"membership": "join"}
	if profile.DisplayName != "" {
		member["displayname"] = profile.DisplayName
	}
	if profile.AvatarURL != "" {
		member["avatar_url"] = profile.AvatarURL
	}
	if err := b.add(spec.MRoomCreate, "", create); err != nil {
		return err
	}
	return b.add(spec.MRoomMember, b.creator, member)
}

// powerLevels is the default power levels content with the preset's and the
// client's overrides applied.
func (req *CreateRequest) powerLevels(creator string, rules presetRules) (map[string]any, error) {
	users := map[string]any{creator: 100}
	if rules.inviteesAreAll {
		for _, u := range req.Invite {
			users[u] = 100
		}
	}
	levels := map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.canonical_alias":    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          100,
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
		"notifications": map[string]any{"room": 50},
	}
	if len(req.PowerLevelContentOverride) > 0 && string(req.PowerLevelContentOverride) != "null" {
		var override map[string]any
		if err := json.Unmarshal(req.PowerLevelContentOverride, &override); err != nil || override == nil {
			return nil, badJSON("power_level_content_override must be an object")
		}
		for k, v := range override {
			levels[k] = v
		}
	}
	return levels, nil
}
