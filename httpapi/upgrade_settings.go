package httpapi

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// The spec's room upgrades module: "When a user joins the new room, the
// server should automatically transfer/replicate some of the user's
// personalized settings such as notifications, tags, etc." On a join of a
// room whose create event names a predecessor, the user's tags of the old
// room and their push rules for it (the room rule, and override or
// underride rules matching the old room's ID) are copied to the new room,
// unless the user already has tags or that rule there. As Synapse does,
// only enabled rules are copied.

// predecessorOf returns the room ID a room's create event names as its
// predecessor, "" when none.
func (s *Server) predecessorOf(ctx context.Context, nid persistence.RoomNID) string {
	var create struct {
		Predecessor struct {
			RoomID string `json:"room_id"`
		} `json:"predecessor"`
	}
	if json.Unmarshal(s.currentContent(ctx, nid, spec.MRoomCreate), &create) != nil {
		return ""
	}
	return create.Predecessor.RoomID
}

// carryOverUpgradeSettings copies a user's settings of an upgraded room's
// predecessor after they joined it; failures are logged (the join stands).
func (s *Server) carryOverUpgradeSettings(ctx context.Context, roomID, userID string) {
	nid, _, err := s.store.RoomInfo(ctx, roomID)
	if err != nil {
		return
	}
	oldRoomID := s.predecessorOf(ctx, nid)
	if oldRoomID == "" {
		return
	}
	log := s.log.With().Str("room_id", roomID).Str("predecessor", oldRoomID).Str("user_id", userID).Logger()
	if err := s.carryOverTags(ctx, userID, oldRoomID, roomID); err != nil {
		log.Warn().Err(err).Msg("tags of the predecessor room not copied")
	}
	rs, err := s.pushRules(ctx, userID)
	if err == nil && copyRoomPushRules(rs, oldRoomID, roomID) {
		err = s.savePushRules(ctx, userID, rs)
	}
	if err != nil {
		log.Warn().Err(err).Msg("push rules of the predecessor room not copied")
	}
}

// carryOverTags gives the new room the user's tags of the old one when it
// has none yet.
func (s *Server) carryOverTags(ctx context.Context, userID, oldRoomID, newRoomID string) error {
	have, err := s.readTags(ctx, userID, newRoomID)
	if err != nil || len(have.Tags) > 0 {
		return err
	}
	old, err := s.readTags(ctx, userID, oldRoomID)
	if err != nil || len(old.Tags) == 0 {
		return err
	}
	enc, err := json.Marshal(old)
	if err != nil {
		return err
	}
	return s.putUserData(ctx, userID, newRoomID, tagAccountDataType, enc)
}

// copyRoomPushRules adds, after each enabled user rule about the old room
// (a room rule for it, or an override or underride rule with a room_id
// condition on it), the same rule about the new room, its ID the new
// room's (as Synapse names them), unless a rule of that ID is already
// there. It reports whether it added any.
func copyRoomPushRules(rs *pushRuleset, oldRoomID, newRoomID string) bool {
	changed := false
	for _, kind := range pushRuleKinds {
		rules := rs.list(kind)
		for i := 0; i < len(*rules); i++ {
			r := (*rules)[i]
			if r.Default || !r.Enabled || !pushRuleIsAbout(kind, r, oldRoomID) ||
				slices.ContainsFunc(*rules, func(x pushRule) bool { return x.RuleID == newRoomID }) {
				continue
			}
			copied := r
			copied.RuleID = newRoomID
			copied.Actions = slices.Clone(r.Actions)
			copied.Conditions = slices.Clone(r.Conditions)
			for j, c := range copied.Conditions {
				if c.Key == "room_id" && c.Pattern == oldRoomID {
					copied.Conditions[j].Pattern = newRoomID
				}
			}
			i++ // the copy goes right after the rule, and is passed over
			*rules = slices.Insert(*rules, i, copied)
			changed = true
		}
	}
	return changed
}

// pushRuleIsAbout: a room rule for the room, or a rule with a room_id
// condition on it.
func pushRuleIsAbout(kind string, r pushRule, roomID string) bool {
	if kind == "room" {
		return r.RuleID == roomID
	}
	return slices.ContainsFunc(r.Conditions, func(c pushCondition) bool {
		return c.Kind == "event_match" && c.Key == "room_id" && c.Pattern == roomID
	})
}
