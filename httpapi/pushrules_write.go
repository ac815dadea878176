package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/persistence"
)

// Changing push rules: user rules are added, moved and deleted; any rule
// is enabled, disabled or given new actions. The user's whole ruleset is
// kept as their m.push_rules account data ({"global": ruleset}), which is
// how clients also receive changes through /sync. Server-default rules the
// stored ruleset lacks (a newer server's) are merged in on read.

const pushRulesAccountData = "m.push_rules"

func (s *Server) pushRuleWriteRoutes(r chi.Router) {
	r.Put("/pushrules/global/{kind}/{ruleId}", s.serve(s.authed(s.putPushRule)))
	r.Delete("/pushrules/global/{kind}/{ruleId}", s.serve(s.authed(s.deletePushRule)))
	r.Put("/pushrules/global/{kind}/{ruleId}/enabled", s.serve(s.authed(s.putPushRuleAttr("enabled"))))
	r.Put("/pushrules/global/{kind}/{ruleId}/actions", s.serve(s.authed(s.putPushRuleAttr("actions"))))
}

// pushRules returns the user's ruleset: the stored one with any missing
// server-default rules, or the defaults.
func (s *Server) pushRules(ctx context.Context, userID string) (*pushRuleset, error) {
	defaults := defaultPushRules(userID)
	raw, err := s.store.GetAccountData(ctx, userID, "", pushRulesAccountData)
	if errors.Is(err, persistence.ErrNotFound) {
		return defaults, nil
	}
	if err != nil {
		return nil, err
	}
	var stored struct {
		Global *pushRuleset `json:"global"`
	}
	if err := json.Unmarshal(raw, &stored); err != nil || stored.Global == nil {
		return defaults, nil // not ours to fail on: start afresh
	}
	rs := stored.Global
	for _, k := range pushRuleKinds {
		have := rs.list(k)
		for _, d := range *defaults.list(k) {
			if !slices.ContainsFunc(*have, func(r pushRule) bool { return r.RuleID == d.RuleID }) {
				*have = append(*have, d)
			}
		}
		if *have == nil {
			*have = []pushRule{}
		}
	}
	return rs, nil
}

func (s *Server) savePushRules(ctx context.Context, userID string, rs *pushRuleset) error {
	raw, err := json.Marshal(map[string]any{"global": rs})
	if err != nil {
		return err
	}
	defer s.pushCache.forget(userID)
	return s.putUserData(ctx, userID, "", pushRulesAccountData, raw)
}

var pushRuleKinds = []string{"override", "content", "room", "sender", "underride"}

// list returns the address of a kind's rules; nil for an unknown kind.
func (rs *pushRuleset) list(kind string) *[]pushRule {
	switch kind {
	case "override":
		return &rs.Override
	case "content":
		return &rs.Content
	case "room":
		return &rs.Room
	case "sender":
		return &rs.Sender
	case "underride":
		return &rs.Underride
	}
	return nil
}

// find returns a rule: 400 for an unknown kind, 404 for an unknown rule.
func (rs *pushRuleset) find(kind, ruleID string) (*pushRule, error) {
	rules := rs.list(kind)
	if rules == nil {
		return nil, errInvalidParam("unknown push rule kind")
	}
	for i := range *rules {
		if (*rules)[i].RuleID == ruleID {
			return &(*rules)[i], nil
		}
	}
	return nil, errNotFound("no such push rule")
}

type pushRuleBody struct {
	Actions    []any           `json:"actions"`
	Conditions []pushCondition `json:"conditions"`
	Pattern    string          `json:"pattern"`
}

// putPushRule: PUT /pushrules/global/{kind}/{ruleId}?before=&after=,
// creating or replacing a user rule.
func (s *Server) putPushRule(r *http.Request) (int, any, error) {
	kind, ruleID := pathParam(r, "kind"), pathParam(r, "ruleId")
	var body pushRuleBody
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if ruleID == "" || strings.HasPrefix(ruleID, ".") {
		return 0, nil, errInvalidParam("rule IDs starting with a dot are the server's")
	}
	if body.Actions == nil {
		return 0, nil, errMissingParam("actions are required")
	}
	rule := pushRule{RuleID: ruleID, Enabled: true, Actions: body.Actions}
	switch kind {
	case "override", "underride":
		rule.Conditions = body.Conditions
		if rule.Conditions == nil {
			rule.Conditions = []pushCondition{}
		}
	case "content":
		if body.Pattern == "" {
			return 0, nil, errMissingParam("content rules need a pattern")
		}
		rule.Pattern = body.Pattern
	case "room", "sender":
		// The rule ID is the room or user the rule is for.
	default:
		return 0, nil, errInvalidParam("unknown push rule kind")
	}
	userID := callerFrom(r.Context()).UserID
	rs, err := s.pushRules(r.Context(), userID)
	if err != nil {
		return 0, nil, err
	}
	rules := rs.list(kind)
	*rules = slices.DeleteFunc(*rules, func(x pushRule) bool { return x.RuleID == ruleID })
	at, err := userRulePosition(*rules, r.URL.Query().Get("before"), r.URL.Query().Get("after"))
	if err != nil {
		return 0, nil, err
	}
	*rules = slices.Insert(*rules, at, rule)
	if err := s.savePushRules(r.Context(), userID, rs); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// userRulePosition is where a new user rule goes: before or after the
// named user rule, else first among the user's rules (which come before
// the server's, but for .m.rule.master).
func userRulePosition(rules []pushRule, before, after string) (int, error) {
	if before != "" || after != "" {
		anchor, offset := before, 0
		if before == "" {
			anchor, offset = after, 1
		}
		i := slices.IndexFunc(rules, func(x pushRule) bool { return x.RuleID == anchor && !x.Default })
		if i < 0 {
			return 0, errNotFound("no such user push rule: " + anchor)
		}
		return i + offset, nil
	}
	i := 0
	for i < len(rules) && rules[i].RuleID == ".m.rule.master" {
		i++
	}
	return i, nil
}

// deletePushRule: DELETE /pushrules/global/{kind}/{ruleId} (user rules).
func (s *Server) deletePushRule(r *http.Request) (int, any, error) {
	kind, ruleID := pathParam(r, "kind"), pathParam(r, "ruleId")
	userID := callerFrom(r.Context()).UserID
	rs, err := s.pushRules(r.Context(), userID)
	if err != nil {
		return 0, nil, err
	}
	rule, err := rs.find(kind, ruleID)
	if err != nil {
		return 0, nil, err
	}
	if rule.Default {
		return 0, nil, errInvalidParam("server-default rules cannot be deleted: disable them")
	}
	rules := rs.list(kind)
	*rules = slices.DeleteFunc(*rules, func(x pushRule) bool { return x.RuleID == ruleID })
	if err := s.savePushRules(r.Context(), userID, rs); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// putPushRuleAttr: PUT /pushrules/global/{kind}/{ruleId}/enabled|actions,
// for any rule.
func (s *Server) putPushRuleAttr(attr string) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		var body struct {
			Enabled *bool `json:"enabled"`
			Actions []any `json:"actions"`
		}
		if err := decodeJSON(r, &body); err != nil {
			return 0, nil, err
		}
		if attr == "enabled" && body.Enabled == nil {
			return 0, nil, errMissingParam("enabled is required")
		}
		if attr == "actions" && body.Actions == nil {
			return 0, nil, errMissingParam("actions are required")
		}
		userID := callerFrom(r.Context()).UserID
		rs, err := s.pushRules(r.Context(), userID)
		if err != nil {
			return 0, nil, err
		}
		rule, err := rs.find(pathParam(r, "kind"), pathParam(r, "ruleId"))
		if err != nil {
			return 0, nil, err
		}
		if attr == "enabled" {
			rule.Enabled = *body.Enabled
		} else {
			rule.Actions = body.Actions
		}
		if err := s.savePushRules(r.Context(), userID, rs); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, struct{}{}, nil
	}
}
