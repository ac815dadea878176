package httpapi

import (
	"sync"

	"github.com/soma-chat/soma/persistence"
)

// unreadCache remembers, per user and room, how far a sync has evaluated
// the unread events and what it counted, so that the next sync evaluates
// only the events since. In a big room every message wakes every member's
// sync: without it each of them would re-read and re-evaluate all their
// unread events (up to maxUnreadScan) for every message.
//
// An entry holds while the user's read position and compiled rules are
// the same; a receipt or a rule change starts the count afresh. A later
// redaction of an event already counted is not subtracted until then.
type unreadCache struct {
	mu      sync.Mutex
	entries map[unreadKey]unreadEntry
}

type unreadKey struct {
	userID string
	room   persistence.RoomNID
}

type unreadEntry struct {
	from    persistence.StreamPos // the read position counted from
	rules   *compiledRuleset      // the rules counted with
	through persistence.StreamPos // events at pos <= through are counted
	scanned int                   // events read so far (the cap is maxUnreadScan)
	notify  int
	hilite  int
}

// maxUnreadEntries bounds the cache; past it, it starts over.
const maxUnreadEntries = 1 << 17

func (c *unreadCache) get(k unreadKey, from persistence.StreamPos, rules *compiledRuleset) (unreadEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || e.from != from || e.rules != rules {
		return unreadEntry{from: from, rules: rules, through: from}, false
	}
	return e, true
}

func (c *unreadCache) put(k unreadKey, e unreadEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxUnreadEntries {
		c.entries = map[unreadKey]unreadEntry{}
	}
	// Concurrent syncs of one user may race: keep the one that went further.
	if old, ok := c.entries[k]; ok && old.from == e.from && old.rules == e.rules && old.through > e.through {
		return
	}
	c.entries[k] = e
}
