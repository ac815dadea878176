package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// Inbound transactions. Each PDU's signatures are checked here, then the
// PDUs go to their rooms' actors in the order sent. When a room lacks an
// event's prev or auth events, they are fetched from the sending server
// (get_missing_events, /event), checked the same way and input first.

// Spec limits of one transaction.
const (
	maxTxnPDUs = 50
	maxTxnEDUs = 100
)

type transaction struct {
	Origin spec.ServerName   `json:"origin"`
	PDUs   []json.RawMessage `json:"pdus"`
	EDUs   []json.RawMessage `json:"edus"`
}

// pduResult is one PDU's entry in the reply: empty when it was processed.
type pduResult struct {
	Error string `json:"error,omitempty"`
}

// PUT /_matrix/federation/v1/send/{txnId}
func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	origin, txnID := OriginFrom(ctx), chi.URLParam(r, "txnId")
	var txn transaction
	if err := json.NewDecoder(r.Body).Decode(&txn); err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "The transaction is malformed")
		return
	}
	switch {
	case txn.Origin != "" && txn.Origin != origin:
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "The transaction's origin is not the requesting server")
		return
	case len(txn.PDUs) > maxTxnPDUs || len(txn.EDUs) > maxTxnEDUs:
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "Too many PDUs or EDUs in one transaction")
		return
	}
	if done, ok := s.txns.get(origin, txnID); ok {
		writeJSON(w, http.StatusOK, done)
		return
	}
	results := map[string]pduResult{}
	for _, batch := range s.checkPDUs(ctx, origin, txn.PDUs, results) {
		s.inputBatch(ctx, origin, batch, results)
	}
	s.handleEDUs(ctx, origin, txn.EDUs)
	reply := map[string]any{"pdus": results}
	s.txns.put(origin, txnID, reply)
	writeJSON(w, http.StatusOK, reply)
}

// roomBatch is one room's PDUs of a transaction, in the order sent.
type roomBatch struct {
	roomID  string
	version gomatrixserverlib.RoomVersion
	events  []gomatrixserverlib.PDU
	denied  bool // by the room's server ACL
}

// checkPDUs parses the PDUs and checks their signatures, grouping those
// that pass by room. PDUs of rooms this server does not have are dropped:
// without the room version their event IDs cannot even be computed.
func (s *Server) checkPDUs(ctx context.Context, origin spec.ServerName, raws []json.RawMessage, results map[string]pduResult) []*roomBatch {
	var batches []*roomBatch
	byRoom := map[string]*roomBatch{}
	for _, raw := range raws {
		roomID := gjson.GetBytes(raw, "room_id").Str
		b := byRoom[roomID]
		if b == nil {
			nid, version, err := s.roomEvents.RoomInfo(ctx, roomID)
			if err != nil {
				if !errors.Is(err, persistence.ErrNotFound) {
					zerolog.Ctx(ctx).Error().Err(err).Msg("reading a room for a transaction")
				}
				continue
			}
			b = &roomBatch{roomID: roomID, version: gomatrixserverlib.RoomVersion(version)}
			byRoom[roomID] = b
			batches = append(batches, b)
			verImpl, err := gomatrixserverlib.GetRoomVersion(b.version)
			allowed := false
			if err == nil {
				allowed, err = s.aclAllows(ctx, &roomView{id: roomID, nid: nid, version: verImpl}, origin)
			}
			b.denied = !allowed
			if err != nil {
				zerolog.Ctx(ctx).Error().Err(err).Msg("reading a room's server ACL for a transaction")
				b.denied = true
			}
		}
		ev, err := gomatrixserverlib.MustGetRoomVersion(b.version).NewEventFromUntrustedJSON(raw)
		if err != nil {
			continue
		}
		if b.denied {
			results[ev.EventID()] = pduResult{Error: "the room's server ACL denies " + string(origin)}
			continue
		}
		if err := gomatrixserverlib.VerifyEventSignatures(ctx, ev, s.keys, userIDForSender); err != nil {
			results[ev.EventID()] = pduResult{Error: "signatures do not verify: " + err.Error()}
			continue
		}
		b.events = append(b.events, ev)
	}
	return batches
}

// inputBatch inputs one room's PDUs, fetching what they lack.
func (s *Server) inputBatch(ctx context.Context, origin spec.ServerName, b *roomBatch, results map[string]pduResult) {
	for _, ev := range b.events {
		res, err := s.input(ctx, b.roomID, origin, ev)
		if err == nil && s.missing != nil && (len(res.MissingPrev) > 0 || len(res.MissingAuth) > 0) {
			s.missing.fill(ctx, s, origin, b, ev, res)
			res, err = s.input(ctx, b.roomID, origin, ev)
		}
		if err == nil && s.missing != nil && len(res.MissingPrev) > 0 {
			// Too far behind to fill the gap: take the state before the
			// event from its server, and leave the gap.
			res, err = s.missing.atState(ctx, s, origin, b, ev)
		}
		switch {
		case err != nil:
			results[ev.EventID()] = pduResult{Error: err.Error()}
		case res.Rejected != "" || len(res.MissingPrev) > 0 || len(res.MissingAuth) > 0:
			results[ev.EventID()] = pduResult{Error: inputRefusal(res)}
		default:
			results[ev.EventID()] = pduResult{}
		}
	}
}

// input hands the room one event (outlier: only stored) and returns what
// became of it.
func (s *Server) input(ctx context.Context, roomID string, origin spec.ServerName, ev gomatrixserverlib.PDU, opts ...func(*messages.InputEvent)) (*messages.InputResult, error) {
	in := &messages.InputEvent{Json: ev.JSON()}
	for _, o := range opts {
		o(in)
	}
	return inputEvent(ctx, s.rooms, roomID, origin, false, in)
}

// inputEvent asks a room to take one remote event (relay: and send it on
// to the room's other servers). A refusal by the room itself is a
// *RoomError; any other error means the room did not answer.
func inputEvent(ctx context.Context, rooms actors.RoomRouter, roomID string, origin spec.ServerName, relay bool, in *messages.InputEvent) (*messages.InputResult, error) {
	reply, err := rooms.RequestRoom(ctx, roomID, &messages.InputEvents{
		RoomId: roomID, Origin: string(origin), Relay: relay, Events: []*messages.InputEvent{in},
	})
	if err != nil {
		return nil, err
	}
	r, _ := reply.(*messages.InputEventsReply)
	if r == nil || r.Error != nil || len(r.Results) != 1 {
		return nil, &RoomError{Err: r.GetError()}
	}
	return r.Results[0], nil
}

func asOutlier(in *messages.InputEvent) { in.Outlier = true }

// MissingEvents fetches events a room lacks from the server that sent an
// event referring to them.
type MissingEvents struct {
	client *Client
	keys   *KeyRing
	store  RoomHeads
}

// RoomHeads reads a room's forward extremities (the earliest_events of a
// get_missing_events request).
type RoomHeads interface {
	RoomHead(ctx context.Context, roomID string) (*persistence.RoomHead, error)
}

// NewMissingEvents wires the fetcher.
func NewMissingEvents(client *Client, keys *KeyRing, store RoomHeads) *MissingEvents {
	return &MissingEvents{client: client, keys: keys, store: store}
}

// maxMissingEvents bounds one get_missing_events walk.
const maxMissingEvents = 20

// fill fetches and inputs what ev lacks: its missing auth events as
// outliers (with their own auth events first), and the gap before its
// prev events, oldest first. What cannot be fetched stays missing, and
// ev's result says so.
func (m *MissingEvents) fill(ctx context.Context, s *Server, origin spec.ServerName, b *roomBatch, ev gomatrixserverlib.PDU, res *messages.InputResult) {
	log := zerolog.Ctx(ctx).With().Str("room_id", b.roomID).Str("event_id", ev.EventID()).Logger()
	if len(res.MissingAuth) > 0 {
		auth, err := m.client.fed.GetEventAuth(ctx, s.self.ServerName, origin, b.version, b.roomID, ev.EventID())
		if err != nil {
			log.Info().Err(err).Msg("fetching the auth chain failed")
			return
		}
		chain := m.verified(ctx, auth.AuthEvents.UntrustedEvents(b.version), b.roomID)
		sort.SliceStable(chain, func(i, j int) bool { return chain[i].Depth() < chain[j].Depth() })
		for _, a := range chain {
			if _, err := s.input(ctx, b.roomID, origin, a, asOutlier); err != nil {
				log.Info().Err(err).Msg("storing a fetched auth event failed")
			}
		}
	}
	if len(res.MissingPrev) > 0 {
		var earliest []string
		if head, err := m.store.RoomHead(ctx, b.roomID); err == nil {
			earliest = head.Extremities
		}
		got, err := m.client.fed.LookupMissingEvents(ctx, s.self.ServerName, origin, b.roomID, fclient.MissingEvents{
			Limit: maxMissingEvents, EarliestEvents: earliest, LatestEvents: []string{ev.EventID()},
		}, b.version)
		if err != nil {
			log.Info().Err(err).Msg("get_missing_events failed")
			return
		}
		gap := m.verified(ctx, got.Events.UntrustedEvents(b.version), b.roomID)
		sort.SliceStable(gap, func(i, j int) bool { return gap[i].Depth() < gap[j].Depth() })
		for _, g := range gap {
			if g.EventID() == ev.EventID() {
				continue
			}
			r, err := s.input(ctx, b.roomID, origin, g)
			if err == nil && len(r.MissingAuth) > 0 {
				m.fill(ctx, s, origin, b, g, r)
				_, err = s.input(ctx, b.roomID, origin, g)
			}
			if err != nil {
				log.Info().Err(err).Str("fetched", g.EventID()).Msg("inputting a fetched event failed")
			}
		}
	}
}

// atState inputs ev with the state before it as origin has it (/state):
// that state and its auth chain, checked (signatures, and each event
// against its auth events), are stored as outliers first.
func (m *MissingEvents) atState(ctx context.Context, s *Server, origin spec.ServerName, b *roomBatch, ev gomatrixserverlib.PDU) (*messages.InputResult, error) {
	resp, err := m.client.fed.LookupState(ctx, s.self.ServerName, origin, b.roomID, ev.EventID(), b.version)
	if err != nil {
		return nil, remoteError("state", err)
	}
	authEvents, stateEvents, err := gomatrixserverlib.CheckStateResponse(ctx, &resp, b.version, m.keys,
		func(gomatrixserverlib.RoomVersion, []string) ([]gomatrixserverlib.PDU, error) {
			return nil, errors.New("the state answer lacks auth events")
		}, userIDForSender)
	if err != nil {
		return nil, fmt.Errorf("checking the state before %s: %w", ev.EventID(), err)
	}
	events := append(authEvents, stateEvents...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].Depth() < events[j].Depth() })
	for _, e := range events {
		if e.RoomID().String() != b.roomID {
			continue
		}
		if _, err := s.input(ctx, b.roomID, origin, e, asOutlier); err != nil {
			return nil, err
		}
	}
	ids := make([]string, len(stateEvents))
	for i, e := range stateEvents {
		ids[i] = e.EventID()
	}
	return s.input(ctx, b.roomID, origin, ev, func(in *messages.InputEvent) {
		in.HasState, in.StateIds = true, ids
	})
}

// verified keeps the events of the room whose signatures verify.
func (m *MissingEvents) verified(ctx context.Context, events []gomatrixserverlib.PDU, roomID string) []gomatrixserverlib.PDU {
	var out []gomatrixserverlib.PDU
	for _, ev := range events {
		if ev.RoomID().String() != roomID {
			continue
		}
		if err := gomatrixserverlib.VerifyEventSignatures(ctx, ev, m.keys, userIDForSender); err != nil {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// txnResults remembers the replies to recent transactions, so that a
// server retrying one (its reply lost) gets the same answer and nothing
// is input twice.
type txnResults struct {
	mu      sync.Mutex
	replies map[txnKey]any
}

type txnKey struct {
	origin spec.ServerName
	txnID  string
}

// maxTxnResults bounds the memory of past transactions.
const maxTxnResults = 4096

func newTxnResults() *txnResults { return &txnResults{replies: map[txnKey]any{}} }

func (t *txnResults) get(origin spec.ServerName, txnID string) (any, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.replies[txnKey{origin, txnID}]
	return r, ok
}

func (t *txnResults) put(origin spec.ServerName, txnID string, reply any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.replies) >= maxTxnResults {
		clear(t.replies)
	}
	t.replies[txnKey{origin, txnID}] = reply
}
