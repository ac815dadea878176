package federation

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
)

// Outbound backfill: a room joined over federation starts, on this server,
// at the join; what came before is asked of a server in the room
// (GET /backfill), checked like any remote event (signatures here, auth
// events by the room's actor) and stored by the room as outliers, outside
// the timeline, where the client API's history walk finds them.

// Backfiller fetches a room's history from other servers.
type Backfiller struct {
	self   spec.ServerName
	client *Client
	keys   gomatrixserverlib.JSONVerifier
	rooms  actors.RoomRouter
	log    zerolog.Logger
}

// NewBackfiller wires the outbound backfill.
func NewBackfiller(self *Identity, client *Client, keys gomatrixserverlib.JSONVerifier, rooms actors.RoomRouter, log zerolog.Logger) *Backfiller {
	return &Backfiller{self: self.ServerName, client: client, keys: keys, rooms: rooms, log: log}
}

// ErrBackfillFailed means no server answered a backfill request.
var ErrBackfillFailed = errors.New("federation: no server answered the backfill request")

// Backfill asks servers (this one skipped), in turn, for up to limit
// events of roomID (of room version version) from the from events
// backwards, and has the room store those that pass its checks as
// outliers. It returns once one server answered (how many events the
// room stored), or ErrBackfillFailed (wrapping each server's error) when
// none did.
func (b *Backfiller) Backfill(ctx context.Context, roomID, version string, from []string, limit int, servers []spec.ServerName) (int, error) {
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil {
		return 0, fmt.Errorf("federation.Backfill: %w", err)
	}
	log := b.log.With().Str("room_id", roomID).Logger()
	var errs []error
	for _, server := range servers {
		if server == b.self {
			continue
		}
		n, err := b.backfillFrom(ctx, verImpl, roomID, from, limit, server)
		if err == nil {
			return n, nil
		}
		log.Info().Err(err).Str("server", string(server)).Msg("backfill from this server failed")
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no other server is in the room"))
	}
	return 0, fmt.Errorf("%w: %w", ErrBackfillFailed, errors.Join(errs...))
}

func (b *Backfiller) backfillFrom(ctx context.Context, verImpl gomatrixserverlib.IRoomVersion, roomID string, from []string, limit int, server spec.ServerName) (int, error) {
	txn, err := b.client.fed.Backfill(ctx, b.self, server, roomID, limit, from)
	if err != nil {
		return 0, remoteError("backfill", err)
	}
	raws := make([][]byte, 0, len(txn.PDUs))
	for _, raw := range txn.PDUs {
		raws = append(raws, raw)
	}
	events := onWalk(b.verified(ctx, verImpl, roomID, raws), from, limit)
	// Oldest first, so that an event's auth events in the same answer
	// are stored before it.
	sort.SliceStable(events, func(i, j int) bool { return events[i].Depth() < events[j].Depth() })
	stored := 0
	for _, ev := range events {
		res, err := b.input(ctx, roomID, server, ev)
		if err == nil && len(res.MissingAuth) > 0 {
			b.fetchAuth(ctx, verImpl, roomID, ev, server)
			res, err = b.input(ctx, roomID, server, ev)
		}
		switch {
		case err != nil:
			// The room is busy or failing: what is stored stays, the
			// rest is asked again at the next page.
			return stored, nil
		case res.Rejected != "" || len(res.MissingAuth) > 0:
			b.log.Info().Str("room_id", roomID).Str("event_id", ev.EventID()).Str("reason", inputRefusal(res)).Msg("a backfilled event was not stored")
		default:
			stored++
		}
	}
	return stored, nil
}

// onWalk keeps, of a backfill answer, the from events and those before
// them through prev events, at most limit of them, deepest first: a
// server cannot make this one store what was not asked for.
func onWalk(events []gomatrixserverlib.PDU, from []string, limit int) []gomatrixserverlib.PDU {
	byID := make(map[string]gomatrixserverlib.PDU, len(events))
	for _, ev := range events {
		byID[ev.EventID()] = ev
	}
	wanted := map[string]bool{}
	for _, id := range from {
		wanted[id] = true
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Depth() > events[j].Depth() })
	var out []gomatrixserverlib.PDU
	for _, ev := range events {
		if len(out) == limit {
			break
		}
		if !wanted[ev.EventID()] {
			continue
		}
		out = append(out, ev)
		for _, prev := range ev.PrevEventIDs() {
			if _, ok := byID[prev]; ok {
				wanted[prev] = true
			}
		}
	}
	return out
}

// fetchAuth stores ev's auth chain, as server gives it, as outliers.
func (b *Backfiller) fetchAuth(ctx context.Context, verImpl gomatrixserverlib.IRoomVersion, roomID string, ev gomatrixserverlib.PDU, server spec.ServerName) {
	auth, err := b.client.fed.GetEventAuth(ctx, b.self, server, verImpl.Version(), roomID, ev.EventID())
	if err != nil {
		b.log.Info().Err(err).Str("room_id", roomID).Str("event_id", ev.EventID()).Msg("fetching a backfilled event's auth chain failed")
		return
	}
	var raws [][]byte
	for _, raw := range auth.AuthEvents {
		raws = append(raws, raw)
	}
	chain := b.verified(ctx, verImpl, roomID, raws)
	sort.SliceStable(chain, func(i, j int) bool { return chain[i].Depth() < chain[j].Depth() })
	for _, a := range chain {
		if _, err := b.input(ctx, roomID, server, a); err != nil {
			return
		}
	}
}

// verified parses raw events of the room and keeps those whose signatures
// verify.
func (b *Backfiller) verified(ctx context.Context, verImpl gomatrixserverlib.IRoomVersion, roomID string, raws [][]byte) []gomatrixserverlib.PDU {
	var out []gomatrixserverlib.PDU
	for _, raw := range raws {
		ev, err := verImpl.NewEventFromUntrustedJSON(raw)
		if err != nil || ev.RoomID().String() != roomID {
			continue
		}
		if err := gomatrixserverlib.VerifyEventSignatures(ctx, ev, b.keys, userIDForSender); err != nil {
			b.log.Info().Err(err).Str("room_id", roomID).Str("event_id", ev.EventID()).Msg("a backfilled event's signatures do not verify")
			continue
		}
		out = append(out, ev)
	}
	return out
}

// input has the room store ev as an outlier.
func (b *Backfiller) input(ctx context.Context, roomID string, origin spec.ServerName, ev gomatrixserverlib.PDU) (*messages.InputResult, error) {
	return inputEvent(ctx, b.rooms, roomID, origin, false, &messages.InputEvent{Json: ev.JSON(), Outlier: true})
}
