package httpapi

import (
	"context"
	"encoding/json"

	"github.com/soma-chat/soma/persistence"
)

// Bundled aggregations: events served to clients carry, in
// unsigned["m.relations"], what other events add to them, so that a client
// shows an edited message, a thread's summary or a reference without asking
// for the relations of every event it renders.

const (
	relReplace   = "m.replace"
	relReference = "m.reference"
)

// bundleRelations adds unsigned["m.relations"] to the formatted events:
// the most recent valid edit (m.replace, the whole event; the content
// shown stays the original's, as the spec asks since v1.7), the thread the
// event roots (m.thread: latest_event, count, current_user_participated)
// and the events referencing it (m.reference: chunk of event IDs), counting
// relations at pos <= to. A redacted event shows no edit: its content is
// gone, and an edit would bring it back. One storage read serves
// the whole page. out[i] must be the formatted stored[i].
func (s *Server) bundleRelations(ctx context.Context, userID string, to persistence.StreamPos, stored []persistence.StoredEvent, out []*clientEvent) error {
	parents := make([]persistence.EventNID, 0, len(stored))
	byNID := make(map[persistence.EventNID]int, len(stored))
	for i := range stored {
		parents = append(parents, stored[i].NID)
		byNID[stored[i].NID] = i
	}
	if len(parents) == 0 {
		return nil
	}
	children, threads, err := s.store.BundledRelations(ctx, parents, userID, to)
	if err != nil {
		return err
	}
	bundles := map[int]map[string]any{}
	bundle := func(i int) map[string]any {
		if bundles[i] == nil {
			bundles[i] = map[string]any{}
		}
		return bundles[i]
	}
	latestEdit := map[int]*persistence.StoredEvent{}
	for k := range children {
		c := &children[k]
		i, ok := byNID[c.Parent]
		if !ok {
			continue
		}
		switch c.RelType {
		case relReplace:
			if validEdit(&stored[i], &c.Event) && newerEdit(&c.Event, latestEdit[i]) {
				latestEdit[i] = &c.Event
			}
		case relReference:
			refs, _ := bundle(i)[relReference].(map[string]any)
			if refs == nil {
				refs = map[string]any{"chunk": []map[string]string{}}
				bundle(i)[relReference] = refs
			}
			refs["chunk"] = append(refs["chunk"].([]map[string]string), map[string]string{"event_id": c.Event.EventID})
		}
	}
	for i, edit := range latestEdit {
		ce, err := toClientEvent(edit, true)
		if err != nil {
			return err
		}
		bundle(i)[relReplace] = ce
	}
	for k := range threads {
		th := &threads[k]
		i, ok := byNID[th.Root]
		if !ok {
			continue
		}
		latest, err := toClientEvent(&th.Latest, true)
		if err != nil {
			return err
		}
		bundle(i)[relThread] = map[string]any{
			"latest_event":              latest,
			"count":                     th.Count,
			"current_user_participated": th.Participated || stored[i].Sender == userID,
		}
	}
	for i, b := range bundles {
		if out[i].Unsigned == nil {
			out[i].Unsigned = map[string]any{}
		}
		out[i].Unsigned["m.relations"] = b
	}
	return nil
}

// validEdit applies the spec's rules for a replacement of an unredacted
// event: same sender and
// type as the original, neither a state event, the original not itself an
// edit, and the replacement carrying m.new_content (which encryption hides,
// so encrypted replacements are taken on trust).
func validEdit(original, edit *persistence.StoredEvent) bool {
	if original.RedactedBy != "" || original.Sender != edit.Sender || original.Type != edit.Type || original.StateKey != nil || edit.StateKey != nil {
		return false
	}
	var orig, repl struct {
		Content struct {
			RelatesTo  json.RawMessage `json:"m.relates_to"`
			NewContent json.RawMessage `json:"m.new_content"`
		} `json:"content"`
	}
	if json.Unmarshal(original.JSON, &orig) != nil {
		return false
	}
	var rel struct {
		RelType any `json:"rel_type"`
	}
	if json.Unmarshal(orig.Content.RelatesTo, &rel) == nil && rel.RelType == relReplace {
		return false
	}
	if edit.Type == "m.room.encrypted" {
		return true
	}
	return json.Unmarshal(edit.JSON, &repl) == nil && len(repl.Content.NewContent) > 0 && repl.Content.NewContent[0] == '{'
}

// newerEdit orders edits as the spec does: by origin_server_ts, then by
// event ID.
func newerEdit(ev, than *persistence.StoredEvent) bool {
	if than == nil {
		return true
	}
	if ev.OriginServerTS != than.OriginServerTS {
		return ev.OriginServerTS > than.OriginServerTS
	}
	return ev.EventID > than.EventID
}
