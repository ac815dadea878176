package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/soma-chat/soma/persistence"
)

// profileCache keeps local users' profiles briefly for the m.presence
// events /sync carries: when many users come online at once, every
// member's sync shows every one of them, and each would otherwise read
// the same profiles again. A change made on this node is seen at once;
// one made on another node within profileCacheTTL.
type profileCache struct {
	mu      sync.Mutex
	entries map[string]cachedProfile
}

type cachedProfile struct {
	p     persistence.Profile
	until time.Time
}

const (
	profileCacheTTL        = 10 * time.Second
	maxProfileCacheEntries = 1 << 16
)

// cachedProfile returns the local user's profile, from the cache when fresh.
func (s *Server) cachedProfile(ctx context.Context, localpart string) (persistence.Profile, error) {
	c := &s.profiles
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[localpart]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.p, nil
	}
	p, err := s.store.GetProfile(ctx, localpart)
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxProfileCacheEntries {
		c.entries = map[string]cachedProfile{}
	}
	c.entries[localpart] = cachedProfile{p: p, until: now.Add(profileCacheTTL)}
	return p, nil
}

// forget drops a profile that has just changed.
func (c *profileCache) forget(localpart string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, localpart)
}
