package actors

import (
	"slices"
	"sync"
	"time"
)

// Typing keeps who is typing in which room on this node, with expiry, and
// wakes the long-polling syncs of a room when its typing set changes.
// Typing notifications are ephemeral: nothing is stored. Each change takes
// the next serial; serials start at the node's start time in milliseconds,
// so that a client's token from before a restart does not hide new ones.
type Typing struct {
	mu      sync.Mutex
	serial  int64
	rooms   map[string]*roomTyping
	waiters map[*typingWaiter]struct{}
}

// roomTyping is one room's typing set. A room whose set emptied keeps its
// entry (and serial), so that syncs learn that typing stopped.
type roomTyping struct {
	serial int64                   // the serial of its last change
	users  map[string]*typingEntry // user → their notification
}

// typingEntry is one typing notification; its timer ends it.
type typingEntry struct{ timer *time.Timer }

type typingWaiter struct {
	rooms map[string]bool
	since int64
	woke  chan struct{}
}

// MaxTypingTimeout caps how long one typing notification lasts.
const MaxTypingTimeout = 2 * time.Minute

// NewTyping returns an empty tracker.
func NewTyping() *Typing {
	return &Typing{
		serial:  time.Now().UnixMilli(),
		rooms:   map[string]*roomTyping{},
		waiters: map[*typingWaiter]struct{}{},
	}
}

// Set records that userID is (typing true) or is no longer typing in
// roomID; a typing notification lasts timeout (at most MaxTypingTimeout).
func (t *Typing) Set(roomID, userID string, typing bool, timeout time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := t.rooms[roomID]
	if rt == nil {
		if !typing {
			return
		}
		rt = &roomTyping{users: map[string]*typingEntry{}}
		t.rooms[roomID] = rt
	}
	old, was := rt.users[userID]
	if was {
		old.timer.Stop()
	}
	if !typing {
		if was {
			delete(rt.users, userID)
			t.changed(roomID, rt)
		}
		return
	}
	timeout = min(max(timeout, time.Second), MaxTypingTimeout)
	e := &typingEntry{}
	e.timer = time.AfterFunc(timeout, func() { t.expire(roomID, userID, e) })
	rt.users[userID] = e
	if !was {
		t.changed(roomID, rt)
	}
}

// expire ends a typing notification unless a newer one replaced it.
func (t *Typing) expire(roomID, userID string, e *typingEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := t.rooms[roomID]
	if rt == nil || rt.users[userID] != e {
		return
	}
	delete(rt.users, userID)
	t.changed(roomID, rt)
}

// changed gives the room the next serial and wakes its waiters; t.mu held.
func (t *Typing) changed(roomID string, rt *roomTyping) {
	t.serial++
	rt.serial = t.serial
	for w := range t.waiters {
		if w.rooms[roomID] && rt.serial > w.since {
			close(w.woke)
			delete(t.waiters, w)
		}
	}
}

// Serial is the serial of the latest change on this node.
func (t *Typing) Serial() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.serial
}

// Changed returns, for each of the rooms whose typing set changed after
// since, who is typing now (sorted; empty when nobody is).
func (t *Typing) Changed(roomIDs []string, since int64) map[string][]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string][]string{}
	for _, id := range roomIDs {
		rt := t.rooms[id]
		if rt == nil || rt.serial <= since {
			continue
		}
		users := make([]string, 0, len(rt.users))
		for u := range rt.users {
			users = append(users, u)
		}
		slices.Sort(users)
		out[id] = users
	}
	return out
}

// Wait returns a channel closed when the typing set of one of the rooms
// changes after since, and a func that cancels the wait.
func (t *Typing) Wait(roomIDs []string, since int64) (<-chan struct{}, func()) {
	w := &typingWaiter{rooms: make(map[string]bool, len(roomIDs)), since: since, woke: make(chan struct{})}
	for _, id := range roomIDs {
		w.rooms[id] = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id := range w.rooms {
		if rt := t.rooms[id]; rt != nil && rt.serial > since {
			close(w.woke)
			return w.woke, func() {}
		}
	}
	t.waiters[w] = struct{}{}
	return w.woke, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.waiters, w)
	}
}
