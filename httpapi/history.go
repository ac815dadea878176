package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

// A room's history from before this server's timeline of it. A room
// joined over federation starts here at the join, whose prev events this
// server lacks; scrolling back past it walks the room's event graph
// instead of stream positions: from the first timeline event's prev
// events, deepest first (reverse topological order), through events
// stored as outliers, asking a server in the room (RemoteHistory) for
// those not stored yet. The walk's frontier (the events to go on from) is
// the page's end token, "h" and the base64 of their IDs as JSON; the walk
// ends at the room's create event, which has no prev events.

// RemoteHistory fetches a room's history from other servers
// (*federation.Backfiller): up to limit events from the from events
// backwards, stored by the room as outliers; an error when no server
// answered.
type RemoteHistory interface {
	Backfill(ctx context.Context, roomID, version string, from []string, limit int, servers []spec.ServerName) (int, error)
}

const (
	// maxBackfillRounds bounds the remote fetches of one page.
	maxBackfillRounds = 3
	// backfillTimeout bounds the time one page waits on other servers.
	backfillTimeout = 20 * time.Second
	// maxBackfillServers bounds the servers one fetch tries.
	maxBackfillServers = 5
)

// historyToken names the frontier of a history walk.
func historyToken(frontier []string) string {
	b, _ := json.Marshal(frontier)
	return "h" + base64.RawURLEncoding.EncodeToString(b)
}

// parseHistoryToken reads a history token; ok is false for other tokens.
func parseHistoryToken(tok string) (frontier []string, ok bool, err error) {
	rest, ok := strings.CutPrefix(tok, "h")
	if !ok {
		return nil, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || json.Unmarshal(b, &frontier) != nil || len(frontier) == 0 {
		return nil, true, errInvalidParam("invalid pagination token")
	}
	return frontier, true, nil
}

// historyStart is the frontier a walk back from the start of the room's
// timeline here begins with: the first timeline event's prev events, none
// when it has none (a room created here starts at its create event).
func (s *Server) historyStart(ctx context.Context, a *roomAccess) ([]string, error) {
	first, err := s.store.RoomEvents(ctx, a.nid, 0, a.bound, 1, true)
	if err != nil || len(first) == 0 {
		return nil, err
	}
	return prevEventsOf(&first[0])
}

func prevEventsOf(ev *persistence.StoredEvent) ([]string, error) {
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(ev.RoomVersion))
	if err != nil {
		return nil, err
	}
	pdu, err := verImpl.NewEventFromTrustedJSONWithEventID(ev.EventID, ev.JSON, false)
	if err != nil {
		return nil, err
	}
	return pdu.PrevEventIDs(), nil
}

// historyPage is what one page of a history walk found.
type historyPage struct {
	events []persistence.StoredEvent
	// frontier is where the next page goes on from; empty at the start of
	// the room.
	frontier []string
	// unreachable: the walk stopped because no server gave the events it
	// needed.
	unreachable bool
}

// walkHistory reads up to limit events of the room the caller may see and
// the filter allows, from frontier backwards, deepest first.
func (s *Server) walkHistory(ctx context.Context, a *roomAccess, vc *visibilityChecker, f *roomEventFilter, frontier []string, limit int) (*historyPage, error) {
	front := map[string]*persistence.StoredEvent{}
	for _, id := range frontier {
		front[id] = nil
	}
	var version string
	var servers []spec.ServerName
	fetchCtx, cancel := context.WithTimeout(ctx, backfillTimeout)
	defer cancel()
	page := &historyPage{}
	rounds, scanned := 0, 0
	for len(page.events) < limit && len(front) > 0 && scanned < maxFilterScan {
		var unknown []string
		for id, ev := range front {
			if ev != nil {
				continue
			}
			stored, err := s.store.EventByID(ctx, id)
			switch {
			case errors.Is(err, persistence.ErrNotFound):
				unknown = append(unknown, id)
			case err != nil:
				return nil, err
			default:
				front[id] = stored
			}
		}
		if len(unknown) > 0 {
			// The deepest event may be among them: fetch before going on.
			if s.opts.RemoteHistory == nil {
				for _, id := range unknown {
					delete(front, id) // nothing can fetch them
				}
				continue
			}
			if rounds == maxBackfillRounds {
				break // the next page goes on
			}
			rounds++
			if servers == nil {
				var err error
				if version, servers, err = s.historyServers(ctx, a); err != nil {
					return nil, err
				}
			}
			sort.Strings(unknown)
			if _, err := s.opts.RemoteHistory.Backfill(fetchCtx, a.roomID, version, unknown, limit-len(page.events), servers); err != nil {
				s.log.Info().Err(err).Str("room_id", a.roomID).Msg("backfill failed")
				page.unreachable = true
				break
			}
			for _, id := range unknown {
				stored, err := s.store.EventByID(ctx, id)
				switch {
				case errors.Is(err, persistence.ErrNotFound):
					// A server answered without it, or it failed the
					// room's checks: the walk cannot go through it.
					s.log.Info().Str("room_id", a.roomID).Str("event_id", id).Msg("history walk: an event could not be backfilled")
					delete(front, id)
				case err != nil:
					return nil, err
				default:
					front[id] = stored
				}
			}
			continue
		}
		ev := deepest(front)
		delete(front, ev.EventID)
		if ev.RoomID != a.roomID || ev.StreamPos > 0 {
			continue // not this room's, or in the timeline (read by stream)
		}
		scanned++
		prev, err := prevEventsOf(ev)
		if err != nil {
			return nil, err
		}
		for _, id := range prev {
			if _, ok := front[id]; !ok {
				front[id] = nil
			}
		}
		if !f.allowsEvent(ev) {
			continue
		}
		ok, err := vc.canSee(ctx, ev)
		if err != nil {
			return nil, err
		}
		if ok {
			page.events = append(page.events, *ev)
		}
	}
	for id := range front {
		page.frontier = append(page.frontier, id)
	}
	sort.Strings(page.frontier)
	return page, nil
}

// deepest is the frontier's event to take next: the greatest depth, ties
// broken by event ID so that every walk takes the same order.
func deepest(front map[string]*persistence.StoredEvent) *persistence.StoredEvent {
	var best *persistence.StoredEvent
	for _, ev := range front {
		if best == nil || ev.Depth > best.Depth || (ev.Depth == best.Depth && ev.EventID < best.EventID) {
			best = ev
		}
	}
	return best
}

// historyServers are the room's version and the servers to ask for its
// history: those of its joined members but this one, the room ID's
// server first (often its creator's).
func (s *Server) historyServers(ctx context.Context, a *roomAccess) (string, []spec.ServerName, error) {
	_, version, err := s.store.RoomInfo(ctx, a.roomID)
	if err != nil {
		return "", nil, err
	}
	members, err := s.store.RoomMemberships(ctx, a.nid)
	if err != nil {
		return "", nil, err
	}
	self := spec.ServerName(s.opts.ServerName)
	seen := map[spec.ServerName]bool{self: true}
	var servers []spec.ServerName
	if _, domain, ok := strings.Cut(a.roomID, ":"); ok {
		seen[spec.ServerName(domain)] = true // first if a member, below
	}
	roomServer := false
	for _, m := range members {
		if m.Membership != spec.Join {
			continue
		}
		_, domain, ok := strings.Cut(m.UserID, ":")
		if !ok {
			continue
		}
		sn := spec.ServerName(domain)
		if _, d, _ := strings.Cut(a.roomID, ":"); sn == spec.ServerName(d) && sn != self {
			roomServer = true
		}
		if !seen[sn] {
			seen[sn] = true
			servers = append(servers, sn)
		}
	}
	if roomServer {
		_, d, _ := strings.Cut(a.roomID, ":")
		servers = append([]spec.ServerName{spec.ServerName(d)}, servers...)
	}
	if len(servers) > maxBackfillServers {
		servers = servers[:maxBackfillServers]
	}
	return version, servers, nil
}
