package httpapi

import (
	"net/http"
	"strings"
)

// Push rules: the spec's server-default ruleset for the caller, with the
// user's own rules and changes (pushrules_write.go). Clients
// (matrix-js-sdk, Element) refuse to start syncing without it. Server-side
// evaluation (notification counts) comes later.

type pushCondition struct {
	Kind    string `json:"kind"`
	Key     string `json:"key,omitempty"`
	Pattern string `json:"pattern,omitempty"`
	Is      string `json:"is,omitempty"`
	Value   any    `json:"value,omitempty"`
}

type pushRule struct {
	RuleID     string          `json:"rule_id"`
	Default    bool            `json:"default"`
	Enabled    bool            `json:"enabled"`
	Conditions []pushCondition `json:"conditions,omitempty"`
	Pattern    string          `json:"pattern,omitempty"`
	Actions    []any           `json:"actions"`
}

type pushRuleset struct {
	Override  []pushRule `json:"override"`
	Content   []pushRule `json:"content"`
	Room      []pushRule `json:"room"`
	Sender    []pushRule `json:"sender"`
	Underride []pushRule `json:"underride"`
}

var (
	actNotify       = "notify"
	actSound        = map[string]any{"set_tweak": "sound", "value": "default"}
	actRing         = map[string]any{"set_tweak": "sound", "value": "ring"}
	actHighlight    = map[string]any{"set_tweak": "highlight"}
	actNotifyLoudly = []any{actNotify, actSound, actHighlight}
)

func eventMatch(key, pattern string) pushCondition {
	return pushCondition{Kind: "event_match", Key: key, Pattern: pattern}
}

func defaultRule(id string, actions []any, conds ...pushCondition) pushRule {
	if actions == nil {
		actions = []any{}
	}
	return pushRule{RuleID: id, Default: true, Enabled: true, Conditions: conds, Actions: actions}
}

// defaultPushRules is the spec's predefined ruleset (Client-Server API,
// "Predefined Rules") for userID.
func defaultPushRules(userID string) *pushRuleset {
	localpart, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	master := defaultRule(".m.rule.master", nil)
	master.Enabled = false
	oneToOne := pushCondition{Kind: "room_member_count", Is: "2"}
	return &pushRuleset{
		Override: []pushRule{
			master,
			defaultRule(".m.rule.suppress_notices", nil, eventMatch("content.msgtype", "m.notice")),
			defaultRule(".m.rule.invite_for_me", []any{actNotify, actSound},
				eventMatch("type", "m.room.member"), eventMatch("content.membership", "invite"), eventMatch("state_key", userID)),
			defaultRule(".m.rule.member_event", nil, eventMatch("type", "m.room.member")),
			defaultRule(".m.rule.is_user_mention", actNotifyLoudly,
				pushCondition{Kind: "event_property_contains", Key: `content.m\.mentions.user_ids`, Value: userID}),
			defaultRule(".m.rule.contains_display_name", actNotifyLoudly, pushCondition{Kind: "contains_display_name"}),
			defaultRule(".m.rule.is_room_mention", []any{actNotify, actHighlight},
				pushCondition{Kind: "event_property_is", Key: `content.m\.mentions.room`, Value: true},
				pushCondition{Kind: "sender_notification_permission", Key: "room"}),
			defaultRule(".m.rule.roomnotif", []any{actNotify, actHighlight},
				pushCondition{Kind: "sender_notification_permission", Key: "room"}, eventMatch("content.body", "@room")),
			defaultRule(".m.rule.tombstone", []any{actNotify, actHighlight},
				eventMatch("type", "m.room.tombstone"), eventMatch("state_key", "")),
			defaultRule(".m.rule.reaction", nil, eventMatch("type", "m.reaction")),
			defaultRule(".m.rule.room.server_acl", nil, eventMatch("type", "m.room.server_acl"), eventMatch("state_key", "")),
			defaultRule(".m.rule.suppress_edits", nil,
				pushCondition{Kind: "event_property_is", Key: `content.m\.relates_to.rel_type`, Value: "m.replace"}),
		},
		Content: []pushRule{{
			RuleID: ".m.rule.contains_user_name", Default: true, Enabled: true,
			Pattern: localpart, Actions: actNotifyLoudly,
		}},
		Room:   []pushRule{},
		Sender: []pushRule{},
		Underride: []pushRule{
			defaultRule(".m.rule.call", []any{actNotify, actRing}, eventMatch("type", "m.call.invite")),
			defaultRule(".m.rule.encrypted_room_one_to_one", []any{actNotify, actSound}, oneToOne, eventMatch("type", "m.room.encrypted")),
			defaultRule(".m.rule.room_one_to_one", []any{actNotify, actSound}, oneToOne, eventMatch("type", "m.room.message")),
			defaultRule(".m.rule.message", []any{actNotify}, eventMatch("type", "m.room.message")),
			defaultRule(".m.rule.encrypted", []any{actNotify}, eventMatch("type", "m.room.encrypted")),
		},
	}
}

// pushRulesHandler: GET /pushrules/ and GET /pushrules/global/.
func (s *Server) pushRulesHandler(global bool) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		rules, err := s.pushRules(r.Context(), callerFrom(r.Context()).UserID)
		if err != nil {
			return 0, nil, err
		}
		if global {
			return http.StatusOK, rules, nil
		}
		return http.StatusOK, map[string]any{"global": rules}, nil
	}
}

// pushRuleHandler: GET /pushrules/global/{kind}/{ruleId}[/enabled|/actions].
func (s *Server) pushRuleHandler(attr string) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		rules, err := s.pushRules(r.Context(), callerFrom(r.Context()).UserID)
		if err != nil {
			return 0, nil, err
		}
		rule, err := rules.find(pathParam(r, "kind"), pathParam(r, "ruleId"))
		if err != nil {
			return 0, nil, err
		}
		switch attr {
		case "enabled":
			return http.StatusOK, map[string]bool{"enabled": rule.Enabled}, nil
		case "actions":
			return http.StatusOK, map[string]any{"actions": rule.Actions}, nil
		}
		return http.StatusOK, rule, nil
	}
}
