package httpapi

import (
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// A request that missed the cache and read the device from the database
// while a logout deleted it must not put the dead token back.
func TestTokenCacheDropsLookupsThatRacedALogout(t *testing.T) {
	c := newTokenCache()
	dev := &persistence.Device{Localpart: "alice", DeviceID: "DEV"}

	if d, gen := c.get("h1"); d == nil {
		c.put("h1", dev, gen)
	}
	if d, _ := c.get("h1"); d != dev {
		t.Fatal("an undisturbed lookup was not cached")
	}

	_, gen := c.get("h2") // miss; the database read starts
	c.forgetUser("alice", "DEV")
	c.put("h2", dev, gen) // the read returns after the logout
	if d, _ := c.get("h2"); d != nil {
		t.Fatal("a lookup that raced a logout was cached")
	}
	if d, _ := c.get("h1"); d != nil {
		t.Fatal("forgetUser left the device's token cached")
	}
}
