package httpapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// clientEvent is an event as the Client-Server API shows it.
type clientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       map[string]any  `json:"unsigned,omitempty"`
}

// strippedEvent is the stripped state shown with invites.
type strippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// pduFields are the parts of a stored PDU the client formats need.
type pduFields struct {
	Content json.RawMessage `json:"content"`
	Redacts string          `json:"redacts"`
}

// toClientEvent formats a stored event; withRoomID is false inside /sync,
// where the room is the enclosing key.
func toClientEvent(ev *persistence.StoredEvent, withRoomID bool) (*clientEvent, error) {
	var f pduFields
	var redactedBecause *clientEvent
	if ev.RedactedBy != "" {
		var err error
		if f, redactedBecause, err = redactedFields(ev); err != nil {
			return nil, err
		}
	} else if err := json.Unmarshal(ev.JSON, &f); err != nil {
		return nil, fmt.Errorf("httpapi: stored event %s: %w", ev.EventID, err)
	}
	if f.Content == nil {
		f.Content = json.RawMessage("{}")
	}
	ce := &clientEvent{
		Content:        f.Content,
		EventID:        ev.EventID,
		OriginServerTS: ev.OriginServerTS,
		Sender:         ev.Sender,
		StateKey:       ev.StateKey,
		Type:           ev.Type,
		Redacts:        f.Redacts,
	}
	if withRoomID {
		ce.RoomID = ev.RoomID
	}
	if redactedBecause != nil {
		ce.Unsigned = map[string]any{"redacted_because": redactedBecause}
	}
	return ce, nil
}

func toClientEvents(evs []persistence.StoredEvent, withRoomID bool) ([]*clientEvent, error) {
	out := make([]*clientEvent, 0, len(evs))
	for i := range evs {
		ce, err := toClientEvent(&evs[i], withRoomID)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}

func toStrippedEvent(ev *persistence.StoredEvent) (*strippedEvent, error) {
	ce, err := toClientEvent(ev, false)
	if err != nil {
		return nil, err
	}
	sk := ""
	if ce.StateKey != nil {
		sk = *ce.StateKey
	}
	return &strippedEvent{Content: ce.Content, Sender: ce.Sender, StateKey: sk, Type: ce.Type}, nil
}

// addPrevContent fills unsigned.replaces_state, prev_content and
// prev_sender of state events from the state before each of them, which
// clients use to render changes ("changed their name from A to B").
// out[i] must be the formatted stored[i].
func (s *Server) addPrevContent(ctx context.Context, stored []persistence.StoredEvent, out []*clientEvent) error {
	for i := range stored {
		ev := &stored[i]
		if ev.StateKey == nil || ev.StateBefore == 0 {
			continue
		}
		prev, err := s.stateEventAt(ctx, ev.StateBefore, ev.Type, *ev.StateKey)
		if err != nil {
			return err
		}
		if prev == nil {
			continue
		}
		pc, err := toClientEvent(prev, false)
		if err != nil {
			return err
		}
		if out[i].Unsigned == nil {
			out[i].Unsigned = map[string]any{}
		}
		out[i].Unsigned["replaces_state"] = prev.EventID
		out[i].Unsigned["prev_content"] = pc.Content
		out[i].Unsigned["prev_sender"] = prev.Sender
	}
	return nil
}
