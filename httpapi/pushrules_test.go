package httpapi

import (
	"net/http"
	"testing"
)

func TestPushRulesServeTheSpecDefaultsForTheCaller(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")

	status, body := ts.do(t, "GET", clientV3+"/pushrules/", alice.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /pushrules/: %d %v", status, body)
	}
	global, _ := body["global"].(map[string]any)
	for _, kind := range []string{"override", "content", "room", "sender", "underride"} {
		if _, ok := global[kind].([]any); !ok {
			t.Errorf("global.%s is missing or not a list", kind)
		}
	}
	content := global["content"].([]any)[0].(map[string]any)
	if content["rule_id"] != ".m.rule.contains_user_name" || content["pattern"] != "alice" {
		t.Errorf("contains_user_name = %v, want pattern alice", content)
	}

	status, body = ts.do(t, "GET", clientV3+"/pushrules/global/override/.m.rule.master/enabled", alice.Token, nil)
	if status != http.StatusOK || body["enabled"] != false {
		t.Errorf("master rule enabled: %d %v, want false", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/pushrules/global/override/.m.rule.invite_for_me", alice.Token, nil)
	if status != http.StatusOK || body["rule_id"] != ".m.rule.invite_for_me" {
		t.Errorf("invite_for_me: %d %v", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/pushrules/global/override/nope", alice.Token, nil)
	wantError(t, status, body, http.StatusNotFound, "M_NOT_FOUND")
	status, body = ts.do(t, "GET", clientV3+"/pushrules/global/sideways/x", alice.Token, nil)
	wantError(t, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	status, body = ts.do(t, "GET", clientV3+"/pushrules/", "", nil)
	wantError(t, status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
}

func TestPushRulesAreChangedAndKept(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	rules := func() map[string]any {
		t.Helper()
		status, body := ts.do(t, "GET", clientV3+"/pushrules/", alice.Token, nil)
		if status != http.StatusOK {
			t.Fatalf("GET /pushrules/: %d %v", status, body)
		}
		return body["global"].(map[string]any)
	}
	ids := func(kind string) []string {
		var out []string
		for _, r := range rules()[kind].([]any) {
			out = append(out, r.(map[string]any)["rule_id"].(string))
		}
		return out
	}
	put := func(path string, body any) (int, map[string]any) {
		return ts.do(t, "PUT", clientV3+"/pushrules/global/"+path, alice.Token, body)
	}
	mustOK := func(status int, body map[string]any) {
		t.Helper()
		if status != http.StatusOK {
			t.Fatalf("%d %v", status, body)
		}
	}
	mustOK(put("override/quiet", map[string]any{"actions": []any{}, "conditions": []any{map[string]any{"kind": "event_match", "key": "type", "pattern": "m.x"}}}))
	mustOK(put("override/first?before=quiet", map[string]any{"actions": []any{"notify"}}))
	mustOK(put("override/last?after=quiet", map[string]any{"actions": []any{"notify"}}))
	if got := ids("override"); len(got) < 4 || got[0] != ".m.rule.master" || got[1] != "first" || got[2] != "quiet" || got[3] != "last" {
		t.Fatalf("override order = %v, want master, first, quiet, last, then the defaults", got)
	}
	mustOK(put("content/cats", map[string]any{"actions": []any{"notify"}, "pattern": "cat*"}))
	mustOK(put("underride/.m.rule.message/enabled", map[string]any{"enabled": false}))
	mustOK(put("override/quiet/actions", map[string]any{"actions": []any{"notify"}}))
	status, body := ts.do(t, "GET", clientV3+"/pushrules/global/underride/.m.rule.message/enabled", alice.Token, nil)
	if status != http.StatusOK || body["enabled"] != false {
		t.Fatalf("disabled default rule reads %d %v", status, body)
	}
	status, body = ts.do(t, "GET", clientV3+"/pushrules/global/override/quiet/actions", alice.Token, nil)
	if acts, _ := body["actions"].([]any); status != http.StatusOK || len(acts) != 1 {
		t.Fatalf("quiet's actions read %d %v", status, body)
	}
	// Kept as m.push_rules account data, which /sync delivers.
	status, body = ts.do(t, "GET", clientV3+"/user/"+alice.UserID+"/account_data/m.push_rules", alice.Token, nil)
	if g, _ := body["global"].(map[string]any); status != http.StatusOK || g == nil {
		t.Fatalf("m.push_rules account data: %d %v", status, body)
	}

	status, body = ts.do(t, "DELETE", clientV3+"/pushrules/global/override/first", alice.Token, nil)
	mustOK(status, body)
	if got := ids("override"); got[1] != "quiet" {
		t.Fatalf("after deleting first: %v", got)
	}
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"DELETE", "override/.m.rule.master", nil, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"DELETE", "override/nope", nil, http.StatusNotFound, "M_NOT_FOUND"},
		{"PUT", "sideways/x", map[string]any{"actions": []any{}}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"PUT", "override/.mine", map[string]any{"actions": []any{}}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"PUT", "override/x", map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"PUT", "content/x", map[string]any{"actions": []any{}}, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"PUT", "override/x?before=nope", map[string]any{"actions": []any{}}, http.StatusNotFound, "M_NOT_FOUND"},
		{"PUT", "override/nope/enabled", map[string]any{"enabled": true}, http.StatusNotFound, "M_NOT_FOUND"},
		{"PUT", "override/quiet/enabled", map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
	} {
		status, body := ts.do(t, c.method, clientV3+"/pushrules/global/"+c.path, alice.Token, c.body)
		wantError(t, status, body, c.status, c.code)
	}
}
