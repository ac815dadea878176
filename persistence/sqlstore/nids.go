package sqlstore

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/soma-chat/soma/persistence"
)

// nidCache remembers string → NID mappings that are known to be committed.
// It is bounded: past its limit it starts over, which costs a few reads.
type nidCache struct {
	mu    sync.RWMutex
	m     map[string]int64
	limit int
}

func newNIDCache(limit int) *nidCache {
	return &nidCache{m: map[string]int64{}, limit: limit}
}

func (c *nidCache) get(s string) (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	nid, ok := c.m[s]
	return nid, ok
}

// learn adds committed mappings.
func (c *nidCache) learn(m map[string]int64) {
	if len(m) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(m) > c.limit {
		c.m = make(map[string]int64, len(m))
	}
	for s, nid := range m {
		c.m[s] = nid
	}
}

// formatNIDs writes a list of NIDs in the dialect's list format.
func (d *Dialect) formatNIDs(nids []int64) string {
	var b strings.Builder
	for i, n := range nids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(n, 10))
	}
	return fmt.Sprintf(d.NIDList, b.String())
}

// formatRoomNIDs is formatNIDs of room NIDs.
func (d *Dialect) formatRoomNIDs(rooms []persistence.RoomNID) string {
	nids := make([]int64, len(rooms))
	for i, r := range rooms {
		nids[i] = int64(r)
	}
	return d.formatNIDs(nids)
}

// parseNIDs reads a list of NIDs written as "{1,2}" or "[1,2]". Every NID
// must be positive: zero means "none" and cannot be in a list.
func parseNIDs(s string) ([]int64, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || !(s[0] == '{' && s[len(s)-1] == '}' || s[0] == '[' && s[len(s)-1] == ']') {
		return nil, fmt.Errorf("malformed NID list %q", s)
	}
	inner := strings.TrimSpace(s[1 : len(s)-1])
	if inner == "" {
		return nil, nil
	}
	parts := strings.Split(inner, ",")
	nids := make([]int64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("malformed NID list %q", s)
		}
		nids[i] = n
	}
	return nids, nil
}
