package main

import (
	"fmt"
	"testing"
)

// TestLimitedSyncHandsOverToMessages: a limited timeline's prev_batch lets
// /messages continue exactly where the timeline starts.
func TestLimitedSyncHandsOverToMessages(t *testing.T) {
	srv := startServer(t, t.TempDir())
	alice := srv.register("alice")
	var created struct {
		RoomID string `json:"room_id"`
	}
	alice.must("POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat", "name": "Hist"}, &created)
	room := created.RoomID
	first := alice.sync("", 0)
	var sent []string
	for i := 0; i < 12; i++ {
		sent = append(sent, alice.send(room, fmt.Sprint("m", i), fmt.Sprint(i)))
	}

	s := alice.syncFilterSince(`{"room":{"timeline":{"limit":5}}}`, first.NextBatch)
	jr := s.Rooms.Join[room]
	if !jr.Timeline.Limited || len(jr.Timeline.Events) != 5 {
		t.Fatalf("timeline: limited=%v with %d events, want limited with 5", jr.Timeline.Limited, len(jr.Timeline.Events))
	}
	for i, e := range jr.Timeline.Events {
		if e.EventID != sent[7+i] {
			t.Fatalf("timeline[%d] = %s, want %s", i, e.EventID, sent[7+i])
		}
	}
	var page struct {
		Chunk []event `json:"chunk"`
	}
	alice.must("GET", "/_matrix/client/v3/rooms/"+pathEscape(room)+"/messages?dir=b&limit=7&from="+jr.Timeline.PrevBatch, nil, &page)
	if len(page.Chunk) != 7 {
		t.Fatalf("/messages from prev_batch gave %d events, want 7", len(page.Chunk))
	}
	for i, e := range page.Chunk {
		if e.EventID != sent[6-i] {
			t.Fatalf("chunk[%d] = %s, want %s (no gap, no repeat)", i, e.EventID, sent[6-i])
		}
	}

	// full_state: the room's whole state even with nothing new.
	var full syncResp
	alice.must("GET", "/_matrix/client/v3/sync?full_state=true&since="+s.NextBatch, nil, &full)
	if !hasEvent(full.Rooms.Join[room].State.Events, "m.room.name", "") && !hasEvent(full.Rooms.Join[room].Timeline.Events, "m.room.name", "") {
		t.Errorf("full_state sync lacks the room name")
	}
}
