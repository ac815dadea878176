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
