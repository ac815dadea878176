package actors

import (
	"sync"
	"time"
)

// Presence values a user can have.
const (
	PresenceOnline      = "online"
	PresenceUnavailable = "unavailable"
	PresenceOffline     = "offline"
)

// How long presence lasts without activity (a sync, or a PUT of presence):
// an online user becomes unavailable after PresenceIdleAfter, and any user
// offline after PresenceOfflineAfter.
const (
	PresenceIdleAfter    = 5 * time.Minute
	PresenceOfflineAfter = 15 * time.Minute
)

// Presence keeps the presence of users on this node in memory, with
// timers that let it decay, and wakes the long-polling syncs that watch a
// user when that user's presence changes. Nothing is stored: a restart
// forgets everyone (they show offline until they sync again), and a
// cluster's nodes each know only the users who use them — sharing
// presence between nodes is still to be built.
//
// Each change takes the next serial; serials start at the node's start
// time in milliseconds, as typing's do. Activity that changes nothing a
// client sees but last_active (a sync of an online user) takes no serial,
// so that syncing does not wake everyone who watches the user.
type Presence struct {
	mu      sync.Mutex
	serial  int64
	users   map[string]*userPresence
	waiters map[*presenceWaiter]struct{}

	idleAfter, offlineAfter time.Duration
	now                     func() time.Time
	// onChange, when set, hears of every change (OnChange).
	onChange func(userID string, st PresenceState)
}

// PresenceState is what a client is shown of a user's presence.
type PresenceState struct {
	Presence        string
	StatusMsg       *string   // nil when none was set
	LastActive      time.Time // zero when never active on this node
	CurrentlyActive bool
	Serial          int64 // of the last change shown to clients
}

// userPresence is one user's presence; timer decays it.
type userPresence struct {
	PresenceState
	// explicit: the presence came from PUT /presence, not from syncing; a
	// sync does not override an explicit "unavailable".
	explicit bool
	timer    *time.Timer
	gen      int // counts timers started: a stopped timer that fired late is stale
}

type presenceWaiter struct {
	users map[string]bool
	since int64
	woke  chan struct{}
}

// NewPresence returns an empty tracker with the default durations.
func NewPresence() *Presence {
	return NewPresenceWithTimeouts(PresenceIdleAfter, PresenceOfflineAfter)
}

// NewPresenceWithTimeouts returns an empty tracker whose users become
// unavailable after idle and offline after offline without activity.
func NewPresenceWithTimeouts(idle, offline time.Duration) *Presence {
	return &Presence{
		serial:       time.Now().UnixMilli(),
		users:        map[string]*userPresence{},
		waiters:      map[*presenceWaiter]struct{}{},
		idleAfter:    idle,
		offlineAfter: max(offline, idle),
		now:          time.Now,
	}
}

// ValidPresence reports whether p is a presence a client may set.
func ValidPresence(p string) bool {
	return p == PresenceOnline || p == PresenceUnavailable || p == PresenceOffline
}

// Set records a presence the user chose (PUT /presence/{userId}/status),
// with its status message (nil clears it). It counts as activity.
func (p *Presence) Set(userID, presence string, statusMsg *string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.user(userID)
	var msg *string
	if statusMsg != nil {
		m := *statusMsg
		msg = &m
	}
	changed := u.Presence != presence || !equalMsg(u.StatusMsg, msg)
	u.Presence, u.StatusMsg, u.explicit = presence, msg, true
	p.active(userID, u, changed)
}

// SetRemote records a remote user's presence as their server reported it
// (an m.presence EDU). Unless their server reports again, it decays as a
// local user's does, counting from now.
func (p *Presence) SetRemote(userID, presence string, statusMsg *string, lastActive time.Time, currentlyActive bool) {
	if !ValidPresence(presence) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.user(userID)
	var msg *string
	if statusMsg != nil {
		m := *statusMsg
		msg = &m
	}
	changed := u.Presence != presence || !equalMsg(u.StatusMsg, msg) || u.CurrentlyActive != currentlyActive
	u.Presence, u.StatusMsg, u.explicit = presence, msg, false
	u.LastActive, u.CurrentlyActive = lastActive, currentlyActive
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	switch presence {
	case PresenceOnline:
		u.timer = p.decayAfter(userID, u, p.idleAfter)
	case PresenceUnavailable:
		u.timer = p.decayAfter(userID, u, p.offlineAfter)
	}
	if changed {
		p.changed(userID, u)
	}
}

// OnChange sets f to hear of every change of a user's presence, local or
// remote (federation sends local users' changes to other servers). f runs
// with the tracker locked: it must not block nor call the tracker. Set it
// before the tracker is used.
func (p *Presence) OnChange(f func(userID string, st PresenceState)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onChange = f
}

// Synced records that the user synced with set_presence = presence:
// online or unavailable mark them so (an explicit unavailable stays),
// offline changes nothing.
func (p *Presence) Synced(userID, presence string) {
	if presence != PresenceOnline && presence != PresenceUnavailable {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.user(userID)
	if u.explicit && u.Presence == PresenceUnavailable {
		presence = PresenceUnavailable
	}
	changed := u.Presence != presence
	if changed {
		u.Presence, u.explicit = presence, false
	}
	p.active(userID, u, changed)
}

// user returns userID's entry, creating an offline one; p.mu held.
func (p *Presence) user(userID string) *userPresence {
	u := p.users[userID]
	if u == nil {
		u = &userPresence{PresenceState: PresenceState{Presence: PresenceOffline}}
		p.users[userID] = u
	}
	return u
}

// active records activity now and restarts the decay timer; changed says
// whether what clients see changed already. p.mu held.
func (p *Presence) active(userID string, u *userPresence, changed bool) {
	u.LastActive = p.now()
	current := u.Presence == PresenceOnline
	if u.CurrentlyActive != current {
		u.CurrentlyActive, changed = current, true
	}
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	switch u.Presence {
	case PresenceOnline:
		u.timer = p.decayAfter(userID, u, p.idleAfter)
	case PresenceUnavailable:
		u.timer = p.decayAfter(userID, u, p.offlineAfter)
	}
	if changed {
		p.changed(userID, u)
	}
}

// decayAfter starts the timer that moves u one step down after d; p.mu held.
func (p *Presence) decayAfter(userID string, u *userPresence, d time.Duration) *time.Timer {
	u.gen++
	gen := u.gen
	return time.AfterFunc(d, func() { p.decay(userID, u, gen) })
}

// decay moves an idle user down a step (online → unavailable → offline)
// unless activity since restarted the timer.
func (p *Presence) decay(userID string, u *userPresence, gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users[userID] != u || u.timer == nil || u.gen != gen {
		return
	}
	u.timer = nil
	u.CurrentlyActive = false
	switch u.Presence {
	case PresenceOnline:
		u.Presence = PresenceUnavailable
		u.timer = p.decayAfter(userID, u, p.offlineAfter-p.idleAfter)
	case PresenceUnavailable:
		u.Presence, u.explicit = PresenceOffline, false
	default:
		return
	}
	p.changed(userID, u)
}

// changed gives the user the next serial and wakes their waiters; p.mu held.
func (p *Presence) changed(userID string, u *userPresence) {
	p.serial++
	u.Serial = p.serial
	for w := range p.waiters {
		if w.users[userID] && u.Serial > w.since {
			close(w.woke)
			delete(p.waiters, w)
		}
	}
	if p.onChange != nil {
		p.onChange(userID, u.copyState())
	}
}

// Serial is the serial of the latest change on this node.
func (p *Presence) Serial() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serial
}

// Get returns userID's presence: offline, never active, when unknown.
func (p *Presence) Get(userID string) PresenceState {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[userID]
	if u == nil {
		return PresenceState{Presence: PresenceOffline}
	}
	return u.copyState()
}

// Changed returns the presence of those of the users whose presence
// changed after since; since 0 returns every one this node knows.
func (p *Presence) Changed(userIDs []string, since int64) map[string]PresenceState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]PresenceState{}
	for _, id := range userIDs {
		if u := p.users[id]; u != nil && u.Serial > since {
			out[id] = u.copyState()
		}
	}
	return out
}

// Wait returns a channel closed when the presence of one of the users
// changes after since, and a func that cancels the wait.
func (p *Presence) Wait(userIDs []string, since int64) (<-chan struct{}, func()) {
	w := &presenceWaiter{users: make(map[string]bool, len(userIDs)), since: since, woke: make(chan struct{})}
	for _, id := range userIDs {
		w.users[id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range w.users {
		if u := p.users[id]; u != nil && u.Serial > since {
			close(w.woke)
			return w.woke, func() {}
		}
	}
	p.waiters[w] = struct{}{}
	return w.woke, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.waiters, w)
	}
}

// copyState copies the state so that callers do not share StatusMsg.
func (u *userPresence) copyState() PresenceState {
	s := u.PresenceState
	if s.StatusMsg != nil {
		m := *s.StatusMsg
		s.StatusMsg = &m
	}
	return s
}

func equalMsg(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
