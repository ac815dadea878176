package federation

import (
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		glob, name string
		want       bool
	}{
		{"*", "anything.org", true},
		{"*", "", true},
		{"evil.com", "evil.com", true},
		{"evil.com", "notevil.com", false},
		{"*.evil.com", "a.b.evil.com", true},
		{"*.evil.com", "evil.com", false},
		{"ev?l.com", "evil.com", true},
		{"ev?l.com", "evl.com", false},
		{"*evil*", "very-evil-server.org", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"EVIL.com", "evil.COM", true},
		{"", "evil.com", false},
	} {
		if got := globMatch(tc.glob, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.glob, tc.name, got, tc.want)
		}
	}
}

func TestServerACLFollowsTheSpecsOrder(t *testing.T) {
	for _, tc := range []struct {
		content string
		server  spec.ServerName
		want    bool
	}{
		{`{"allow":["*"]}`, "good.org", true},
		{`{"allow":["*"]}`, "good.org:8448", true},
		{`{"allow":["*"],"deny":["evil.com"]}`, "evil.com:1234", false},
		{`{"allow":["*"],"deny":["*.evil.com"]}`, "sub.evil.com", false},
		{`{"allow":["good.org"],"deny":[]}`, "other.org", false},
		{`{"deny":["evil.com"]}`, "good.org", false}, // no allow: nobody
		{`{}`, "good.org", false},
		{`"not an object"`, "good.org", false},
		{`{"allow":["*"]}`, "127.0.0.1:8448", true},
		{`{"allow":["*"],"allow_ip_literals":false}`, "127.0.0.1:8448", false},
		{`{"allow":["*"],"allow_ip_literals":false}`, "[::1]:8448", false},
		{`{"allow":["*"],"allow_ip_literals":false}`, "good.org", true},
		{`{"allow":["*"],"allow_ip_literals":"false"}`, "127.0.0.1", true}, // not a boolean: the default
		{`{"allow":["*", 7],"deny":[null, "evil.com"]}`, "evil.com", false},
		{`{"allow":["*"]}`, "bad name!", false},
	} {
		if got := parseServerACL([]byte(tc.content)).Allows(tc.server); got != tc.want {
			t.Errorf("ACL %s for %s: %v, want %v", tc.content, tc.server, got, tc.want)
		}
	}
}
