package rooms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
)

// Room upgrades (POST /rooms/{roomId}/upgrade, the spec's "Room Upgrades"
// module): what the replacement room starts with, and how the old room's
// power levels and canonical alias change. Pure functions over content;
// httpapi reads the old state and sends the events through the actors.

// Event types gomatrixserverlib has no constants for.
const (
	MRoomTombstone = "m.room.tombstone"
	MRoomServerACL = "m.room.server_acl"
)

// transferredState are the state events (state key "") a replacement room
// copies from its predecessor, in the order they are sent: the spec's
// recommended list and the canonical alias. Power levels are handled
// apart (see Upgrade.Compose); memberships are never copied (a server
// cannot speak for other servers' users), nor is anything outside the
// m. namespace, whose meaning may depend on who sent it.
var transferredState = []string{
	spec.MRoomJoinRules,
	spec.MRoomHistoryVisibility,
	spec.MRoomGuestAccess,
	spec.MRoomName,
	spec.MRoomTopic,
	spec.MRoomAvatar,
	spec.MRoomEncryption,
	MRoomServerACL,
}

// UpgradeReads are the state events (state key "") of the old room that
// Upgrade.Compose looks at.
func UpgradeReads() []string {
	return append([]string{spec.MRoomCreate, spec.MRoomPowerLevels, spec.MRoomCanonicalAlias}, transferredState...)
}

// Upgrade describes a room being replaced by a new one.
type Upgrade struct {
	OldRoomID string
	// LastEventID is the newest event of the old room: the predecessor's
	// event_id ("the last known event in the old room").
	LastEventID string
	NewVersion  string
	// ServerName is this server's: the local aliases of the canonical
	// alias move to the new room, remote ones stay behind.
	ServerName string
	// OldState is the old room's current state as clients see it
	// (redacted content for redacted events); only the UpgradeReads
	// events are read, and need to be there.
	OldState []InitialStateDef
}

// StateContent returns the content of the old room's (typ, "") state
// event, nil when it has none.
func (u *Upgrade) StateContent(typ string) json.RawMessage {
	for _, s := range u.OldState {
		if s.Type == typ && s.StateKey == "" {
			return s.Content
		}
	}
	return nil
}

// Compose returns the initial events of the replacement room: the create
// event naming its predecessor (and keeping the old room's type and
// m.federate), the upgrader's join, the power levels, the transferred
// state and the local part of the canonical alias. While the state is
// copied the upgrader holds enough power to send all of it; when that
// needed raising their level, a final power levels event restores the old
// room's exact levels.
func (u *Upgrade) Compose(upgrader string, profile CreatorProfile) ([]*messages.EventContent, error) {
	b := &initialEvents{creator: upgrader}
	predecessor := map[string]string{"room_id": u.OldRoomID}
	if u.LastEventID != "" {
		predecessor["event_id"] = u.LastEventID
	}
	create := map[string]any{"predecessor": predecessor}
	if old, err := decodeObject(u.StateContent(spec.MRoomCreate)); err == nil {
		for _, k := range []string{"type", "m.federate"} {
			if v, ok := old[k]; ok {
				create[k] = v
			}
		}
	}
	if err := b.start(u.NewVersion, create, profile); err != nil {
		return nil, err
	}

	var final map[string]any
	if raw := u.StateContent(spec.MRoomPowerLevels); raw != nil {
		levels, err := decodeObject(raw)
		if err != nil {
			return nil, badJSON("the old room's power levels are not an object")
		}
		temporary, raised := upgraderPowerLevels(levels, upgrader)
		if err := b.add(spec.MRoomPowerLevels, "", temporary); err != nil {
			return nil, err
		}
		if raised {
			final = levels
		}
	}
	for _, typ := range transferredState {
		if c := u.StateContent(typ); c != nil {
			if err := b.add(typ, "", c); err != nil {
				return nil, err
			}
		}
	}
	if moved, _, ok := SplitCanonicalAlias(u.StateContent(spec.MRoomCanonicalAlias), u.ServerName); ok {
		if err := b.add(spec.MRoomCanonicalAlias, "", moved); err != nil {
			return nil, err
		}
	}
	if final != nil {
		if err := b.add(spec.MRoomPowerLevels, "", final); err != nil {
			return nil, err
		}
	}
	return b.events, nil
}

// decodeObject decodes a JSON object keeping numbers exact (power levels
// are integers up to 2^53 and must come back out as they went in).
func decodeObject(raw json.RawMessage) (map[string]any, error) {
	if raw == nil {
		return nil, fmt.Errorf("no content")
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("content is not an object")
	}
	return m, nil
}

// levelOf reads a power level value: an integer, or (rooms before v10) a
// string holding one; def when absent or unreadable.
func levelOf(v any, def int64) int64 {
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i
		}
	case float64:
		return int64(n)
	case int:
		return int64(n)
	case int64:
		return n
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64); err == nil {
			return i
		}
	}
	return def
}

// levelsNeededForAll is the power level that allows sending every event
// the power levels name, including the power levels themselves: the
// greatest of the per-action and per-event levels and their defaults
// (state_default, ban, kick and redact are 50 when unset; the rest 0).
func levelsNeededForAll(levels map[string]any) int64 {
	need := int64(0)
	for key, def := range map[string]int64{
		"ban": 50, "kick": 50, "redact": 50, "invite": 0, "state_default": 50, "events_default": 0,
	} {
		need = max(need, levelOf(levels[key], def))
	}
	if events, ok := levels["events"].(map[string]any); ok {
		for _, v := range events {
			need = max(need, levelOf(v, 0))
		}
	}
	return need
}

// upgraderPowerLevels returns a copy of levels in which the upgrader can
// send every event, and whether their level had to be raised for that.
func upgraderPowerLevels(levels map[string]any, upgrader string) (map[string]any, bool) {
	users, _ := levels["users"].(map[string]any)
	current := levelOf(levels["users_default"], 0)
	if v, ok := users[upgrader]; ok {
		current = levelOf(v, current)
	}
	need := levelsNeededForAll(levels)
	if current >= need {
		return levels, false
	}
	out := make(map[string]any, len(levels)+1)
	for k, v := range levels {
		out[k] = v
	}
	raisedUsers := make(map[string]any, len(users)+1)
	for k, v := range users {
		raisedUsers[k] = v
	}
	raisedUsers[upgrader] = need
	out["users"] = raisedUsers
	return out, true
}

// RestrictedPowerLevels returns the old room's power levels changed so
// that ordinary members can no longer send events or invite: the spec's
// example, events_default and invite raised to the greater of 50 and
// users_default + 1. changed is false when they already were that high
// (or the content cannot be read).
func RestrictedPowerLevels(content json.RawMessage) (restricted json.RawMessage, changed bool) {
	levels, err := decodeObject(content)
	if err != nil {
		return nil, false
	}
	floor := max(50, levelOf(levels["users_default"], 0)+1)
	for _, key := range []string{"events_default", "invite"} {
		if levelOf(levels[key], 0) < floor {
			levels[key] = floor
			changed = true
		}
	}
	if !changed {
		return nil, false
	}
	out, err := json.Marshal(levels)
	if err != nil {
		return nil, false
	}
	return out, true
}

// SplitCanonicalAlias divides an m.room.canonical_alias content between
// the replacement room, which gets the aliases on serverName (they move
// with the room), and the old room, which keeps the rest. ok is false
// when no local alias moves (then neither room's event changes).
func SplitCanonicalAlias(content json.RawMessage, serverName string) (moved, kept map[string]any, ok bool) {
	old, err := decodeObject(content)
	if err != nil {
		return nil, nil, false
	}
	local := func(alias string) bool {
		_, server, found := strings.Cut(alias, ":")
		return found && strings.HasPrefix(alias, "#") && server == serverName
	}
	moved, kept = map[string]any{}, make(map[string]any, len(old))
	for k, v := range old {
		kept[k] = v
	}
	if alias, _ := old["alias"].(string); local(alias) {
		moved["alias"] = alias
		delete(kept, "alias")
		ok = true
	}
	if alts, isList := old["alt_aliases"].([]any); isList {
		var movedAlts, keptAlts []any
		for _, v := range alts {
			if alias, _ := v.(string); local(alias) {
				movedAlts = append(movedAlts, alias)
			} else {
				keptAlts = append(keptAlts, v)
			}
		}
		if len(movedAlts) > 0 {
			moved["alt_aliases"] = movedAlts
			ok = true
			if len(keptAlts) > 0 {
				kept["alt_aliases"] = keptAlts
			} else {
				delete(kept, "alt_aliases")
			}
		}
	}
	if !ok {
		return nil, nil, false
	}
	return moved, kept, true
}
