package httpapi

import (
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// Small readers of well-known content fields; a malformed content reads as
// the field being absent.

func contentField(ev *persistence.StoredEvent, field string) string {
	if ev == nil {
		return ""
	}
	var outer struct {
		Content map[string]json.RawMessage `json:"content"`
	}
	if json.Unmarshal(ev.JSON, &outer) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(outer.Content[field], &s) != nil {
		return ""
	}
	return s
}

func membershipOf(ev *persistence.StoredEvent) string { return contentField(ev, "membership") }

func historyVisibilityOf(ev *persistence.StoredEvent) string {
	return contentField(ev, "history_visibility")
}

func membershipFromContent(content json.RawMessage) string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(content, &c)
	return c.Membership
}
