package federation

import (
	"encoding/json"
	"net"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Server ACLs (m.room.server_acl): which servers a room lets make requests
// about it. The spec's order: no ACL event allows; an IP literal is denied
// when allow_ip_literals is false; a deny match denies; an allow match
// allows; anything else is denied (an ACL without allow shuts out every
// server). The port is never part of the match.

// serverACL is the content of an m.room.server_acl event. Entries of the
// wrong type are ignored rather than failing the whole ACL, and
// allow_ip_literals counts as true unless it is the boolean false.
type serverACL struct {
	Allow           []string
	Deny            []string
	AllowIPLiterals bool
}

// parseServerACL reads an ACL event's content (as the event JSON's
// "content"); it never fails: a content that is not an object allows
// nobody, as an empty allow list does.
func parseServerACL(content json.RawMessage) serverACL {
	acl := serverACL{AllowIPLiterals: true}
	var c map[string]json.RawMessage
	if json.Unmarshal(content, &c) != nil {
		return acl
	}
	acl.AllowIPLiterals = string(c["allow_ip_literals"]) != "false"
	acl.Allow = globList(c["allow"])
	acl.Deny = globList(c["deny"])
	return acl
}

// globList reads a list of strings, skipping entries that are not.
func globList(raw json.RawMessage) []string {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	var out []string
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) == nil {
			out = append(out, s)
		}
	}
	return out
}

// Allows says whether the ACL lets server in.
func (acl serverACL) Allows(server spec.ServerName) bool {
	host, _, ok := spec.ParseAndValidateServerName(server)
	if !ok {
		return false
	}
	if !acl.AllowIPLiterals && net.ParseIP(strings.Trim(host, "[]")) != nil {
		return false
	}
	for _, g := range acl.Deny {
		if globMatch(g, host) {
			return false
		}
	}
	for _, g := range acl.Allow {
		if globMatch(g, host) {
			return true
		}
	}
	return false
}

// globMatch matches name against a glob of '*' (any run of characters)
// and '?' (one character), ignoring ASCII case as DNS does.
func globMatch(glob, name string) bool {
	glob, name = strings.ToLower(glob), strings.ToLower(name)
	gi, ni := 0, 0
	star, mark := -1, 0 // the last '*' seen, and where its match started
	for ni < len(name) {
		switch {
		case gi < len(glob) && (glob[gi] == '?' || glob[gi] == name[ni]):
			gi++
			ni++
		case gi < len(glob) && glob[gi] == '*':
			star, mark = gi, ni
			gi++
		case star >= 0:
			// Let the last '*' take one more character and retry.
			mark++
			gi, ni = star+1, mark
		default:
			return false
		}
	}
	for gi < len(glob) && glob[gi] == '*' {
		gi++
	}
	return gi == len(glob)
}
