package httpapi

import (
	"context"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// The streams of a /sync beside room timelines: account data (global and
// per room) and receipts, read for the same (since, to] as the timelines.

// accountDataEvent is an account data entry as /sync shows it.
type accountDataEvent struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// syncStreams are the non-timeline updates of one sync.
type syncStreams struct {
	global   []any
	perRoom  map[string][]any // room ID → its account data events
	receipts map[string]*receiptEvent
}

// receiptEvent is one room's m.receipt ephemeral event: event ID →
// receipt type → user ID → receipt.
type receiptEvent struct {
	Type    string                                       `json:"type"`
	Content map[string]map[string]map[string]receiptInfo `json:"content"`
}

type receiptInfo struct {
	TS       int64  `json:"ts"`
	ThreadID string `json:"thread_id,omitempty"`
}

// readSyncStreams reads the user's account data in (since, to] and the
// receipts of the given rooms: those in full from the start, the others
// in (since, to]. m.read.private receipts are the user's own only.
func (s *Server) readSyncStreams(ctx context.Context, req *syncRequest, to persistence.StreamPos, fullRooms, incrementalRooms []persistence.RoomNID) (*syncStreams, error) {
	st := &syncStreams{global: []any{}, perRoom: map[string][]any{}, receipts: map[string]*receiptEvent{}}
	since := req.since
	if req.fullState {
		since = 0
	}
	data, err := s.store.AccountDataBetween(ctx, req.userID, since, to)
	if err != nil {
		return nil, err
	}
	rad := &req.filter.Room.AccountData
	for _, d := range data {
		ev := accountDataEvent{Type: d.Type, Content: d.Content}
		if d.RoomID == "" {
			if req.filter.AccountData.allowsType(d.Type) {
				st.global = append(st.global, ev)
			}
		} else if roomAllowed(rad.Rooms, rad.NotRooms, d.RoomID) && rad.allowsType(d.Type) {
			st.perRoom[d.RoomID] = append(st.perRoom[d.RoomID], ev)
		}
	}
	for _, part := range []struct {
		rooms []persistence.RoomNID
		from  persistence.StreamPos
	}{{fullRooms, 0}, {incrementalRooms, since}} {
		rcs, err := s.store.ReceiptsBetween(ctx, part.rooms, part.from, to)
		if err != nil {
			return nil, err
		}
		for _, rc := range rcs {
			if rc.Type == receiptReadPrivate && rc.UserID != req.userID {
				continue
			}
			ev := st.receipts[rc.RoomID]
			if ev == nil {
				ev = &receiptEvent{Type: "m.receipt", Content: map[string]map[string]map[string]receiptInfo{}}
				st.receipts[rc.RoomID] = ev
			}
			byType := ev.Content[rc.EventID]
			if byType == nil {
				byType = map[string]map[string]receiptInfo{}
				ev.Content[rc.EventID] = byType
			}
			if byType[rc.Type] == nil {
				byType[rc.Type] = map[string]receiptInfo{}
			}
			byType[rc.Type][rc.UserID] = receiptInfo{TS: rc.TS, ThreadID: rc.ThreadID}
		}
	}
	return st, nil
}

// readStreamsFor reads the streams for the user's joined rooms (bounded
// by to): rooms whose section is full this time get their receipts from
// the start.
func (s *Server) readStreamsFor(ctx context.Context, req *syncRequest, ms []persistence.Membership, to persistence.StreamPos) (*syncStreams, error) {
	var full, incremental []persistence.RoomNID
	for _, m := range ms {
		if m.Membership != "join" || m.StreamPos > to {
			continue
		}
		if req.since == 0 || req.fullState || m.StreamPos > req.since {
			full = append(full, m.RoomNID)
		} else {
			incremental = append(incremental, m.RoomNID)
		}
	}
	return s.readSyncStreams(ctx, req, to, full, incremental)
}

// toDeviceEvent is a to-device message as /sync shows it.
type toDeviceEvent struct {
	Sender  string          `json:"sender"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// syncDeviceStreams fills the syncing device's part of the response: its
// to-device messages in (since, to] (those up to since, which the client
// acknowledged by sending since, are deleted), its one-time key counts and
// unused fallback key types, and, incrementally, the users whose devices
// changed.
func (s *Server) syncDeviceStreams(ctx context.Context, req *syncRequest, to persistence.StreamPos, resp *syncResponse) error {
	if req.since > 0 {
		if err := s.store.DeleteToDeviceUpTo(ctx, req.userID, req.deviceID, req.since); err != nil {
			return err
		}
	}
	// Every message up to to is delivered now: the next token acknowledges
	// them all, so none may be held back.
	msgs, err := s.store.ToDeviceBetween(ctx, req.userID, req.deviceID, req.since, to, 1<<30)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		resp.ToDevice.Events = append(resp.ToDevice.Events, toDeviceEvent{Sender: m.Sender, Type: m.Type, Content: m.Content})
	}
	if resp.OneTimeKeysCount, err = s.oneTimeKeyCounts(ctx, req.userID, req.deviceID); err != nil {
		return err
	}
	if resp.UnusedFallbackKeyTypes, err = s.store.UnusedFallbackKeyTypes(ctx, req.userID, req.deviceID); err != nil {
		return err
	}
	// A since token at position 0 (an initial sync on a server whose stream
	// was still empty) is incremental all the same.
	if req.hasSince {
		changed, err := s.store.DeviceListChangesBetween(ctx, req.userID, req.since, to)
		if err != nil {
			return err
		}
		resp.DeviceLists.Changed = changed
	}
	return nil
}
