package httpapi

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Push rule evaluation: whether an event notifies a user, and whether it
// highlights. The ruleset is compiled once per user (glob patterns into
// regular expressions) and cached until the user changes it.

// pushContext is what conditions need beyond the event itself.
type pushContext struct {
	userID      string
	displayName string // the user's display name in the room ("" none)
	memberCount int    // joined members of the room
	// senderCanNotifyRoom: the sender has the power level for @room.
	senderCanNotifyRoom bool
}

// pushOutcome is what the first matching rule's actions ask for.
type pushOutcome struct {
	notify, highlight bool
	// actions are the rule's actions as stored (for /notifications).
	actions []any
}

// tweaks are the set_tweak actions as the push gateway's tweaks object.
func (o pushOutcome) tweaks() map[string]any {
	t := map[string]any{}
	for _, a := range o.actions {
		if m, ok := a.(map[string]any); ok {
			if name, ok := m["set_tweak"].(string); ok && name != "" {
				v, has := m["value"]
				if !has && name == "highlight" {
					v = true
				}
				t[name] = v
			}
		}
	}
	return t
}

type compiledRule struct {
	rule  pushRule
	kind  string
	match func(ev map[string]any, body string, pc *pushContext) bool
}

type compiledRuleset struct {
	rules []compiledRule // in priority order, enabled only
}

// pushRuleCache keeps each user's compiled ruleset.
type pushRuleCache struct {
	mu    sync.Mutex
	users map[string]*compiledRuleset
}

func (c *pushRuleCache) get(userID string) *compiledRuleset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.users[userID]
}

func (c *pushRuleCache) put(userID string, rs *compiledRuleset) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.users == nil || len(c.users) >= 1<<16 {
		c.users = map[string]*compiledRuleset{} // bounded: start over
	}
	c.users[userID] = rs
}

func (c *pushRuleCache) forget(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.users, userID)
}

// compilePushRules turns a ruleset into matchers, in the spec's priority
// order; disabled rules are dropped.
func compilePushRules(rs *pushRuleset) *compiledRuleset {
	out := &compiledRuleset{}
	for _, kind := range pushRuleKinds {
		for _, r := range *rs.list(kind) {
			if !r.Enabled {
				continue
			}
			out.rules = append(out.rules, compiledRule{rule: r, kind: kind, match: compileRule(kind, r)})
		}
	}
	return out
}

func compileRule(kind string, r pushRule) func(map[string]any, string, *pushContext) bool {
	switch kind {
	case "content":
		re := globRegexp(r.Pattern, true)
		return func(_ map[string]any, body string, _ *pushContext) bool { return re.MatchString(body) }
	case "room":
		return func(ev map[string]any, _ string, _ *pushContext) bool { return ev["room_id"] == r.RuleID }
	case "sender":
		return func(ev map[string]any, _ string, _ *pushContext) bool { return ev["sender"] == r.RuleID }
	}
	conds := make([]func(map[string]any, string, *pushContext) bool, 0, len(r.Conditions))
	for _, c := range r.Conditions {
		conds = append(conds, compileCondition(c))
	}
	return func(ev map[string]any, body string, pc *pushContext) bool {
		for _, c := range conds {
			if !c(ev, body, pc) {
				return false
			}
		}
		return true
	}
}

func compileCondition(c pushCondition) func(map[string]any, string, *pushContext) bool {
	never := func(map[string]any, string, *pushContext) bool { return false }
	switch c.Kind {
	case "event_match":
		re := globRegexp(c.Pattern, c.Key == "content.body")
		keys := splitPushKey(c.Key)
		return func(ev map[string]any, _ string, _ *pushContext) bool {
			s, ok := lookupPushKey(ev, keys).(string)
			return ok && re.MatchString(s)
		}
	case "event_property_is":
		keys := splitPushKey(c.Key)
		return func(ev map[string]any, _ string, _ *pushContext) bool {
			v, ok := lookupPushKeyOK(ev, keys)
			return ok && scalarEqual(v, c.Value)
		}
	case "event_property_contains":
		keys := splitPushKey(c.Key)
		return func(ev map[string]any, _ string, _ *pushContext) bool {
			list, _ := lookupPushKey(ev, keys).([]any)
			for _, v := range list {
				if scalarEqual(v, c.Value) {
					return true
				}
			}
			return false
		}
	case "contains_display_name":
		return func(_ map[string]any, body string, pc *pushContext) bool {
			return pc.displayName != "" && globRegexp(regexp.QuoteMeta(pc.displayName), true).MatchString(body)
		}
	case "room_member_count":
		op, n := parseMemberCount(c.Is)
		if op == "" {
			return never
		}
		return func(_ map[string]any, _ string, pc *pushContext) bool { return compareCount(pc.memberCount, op, n) }
	case "sender_notification_permission":
		if c.Key != "room" {
			return never
		}
		return func(_ map[string]any, _ string, pc *pushContext) bool { return pc.senderCanNotifyRoom }
	}
	return never // unknown conditions never match, as the spec says
}

// evaluate returns what the first matching rule asks for.
func (rs *compiledRuleset) evaluate(ev map[string]any, pc *pushContext) pushOutcome {
	content, _ := ev["content"].(map[string]any)
	body, _ := content["body"].(string)
	for _, r := range rs.rules {
		if r.match(ev, body, pc) {
			return actionsOutcome(r.rule.Actions)
		}
	}
	return pushOutcome{}
}

func actionsOutcome(actions []any) pushOutcome {
	o := pushOutcome{actions: actions}
	for _, a := range actions {
		switch a := a.(type) {
		case string:
			o.notify = o.notify || a == "notify"
		case map[string]any:
			if a["set_tweak"] == "highlight" {
				v, has := a["value"]
				o.highlight = o.highlight || !has || v == true
			}
		}
	}
	if !o.notify {
		o.highlight = false
	}
	return o
}

// globRegexp compiles a push rule glob (* and ?), case-insensitively:
// the whole value, or (words) a run of whole words within it.
func globRegexp(glob string, words bool) *regexp.Regexp {
	var b strings.Builder
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString(".*?")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	expr := "^" + b.String() + "$"
	if words {
		expr = `(^|\W)` + b.String() + `(\W|$)`
	}
	re, err := regexp.Compile("(?is)" + expr)
	if err != nil {
		return regexp.MustCompile(`$^`)
	}
	return re
}

// splitPushKey splits a dotted key, where `\.` is a literal dot and `\\`
// a backslash.
func splitPushKey(key string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		switch {
		case key[i] == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			cur.WriteByte(key[i+1])
			i++
		case key[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(key[i])
		}
	}
	return append(parts, cur.String())
}

func lookupPushKey(ev map[string]any, keys []string) any {
	v, _ := lookupPushKeyOK(ev, keys)
	return v
}

func lookupPushKeyOK(ev map[string]any, keys []string) (any, bool) {
	var cur any = ev
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalarEqual compares JSON scalars (strings, booleans, integers, null).
func scalarEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		return a.String() == numberString(b)
	case float64:
		return numberString(a) == numberString(b)
	}
	return a == b
}

func numberString(v any) string {
	switch v := v.(type) {
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	}
	return "\x00"
}

func parseMemberCount(is string) (string, int) {
	for _, op := range []string{"==", "<=", ">=", "<", ">"} {
		if rest, ok := strings.CutPrefix(is, op); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				return "", 0
			}
			return op, n
		}
	}
	n, err := strconv.Atoi(is)
	if err != nil {
		return "", 0
	}
	return "==", n
}

func compareCount(have int, op string, n int) bool {
	switch op {
	case "==":
		return have == n
	case "<":
		return have < n
	case ">":
		return have > n
	case "<=":
		return have <= n
	case ">=":
		return have >= n
	}
	return false
}
