package federation

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// fakeEDUStore is this server's storage as the inbound EDUs see it: room
// !r:here.example (NID 1) with alice (local) and bob (of there.example)
// joined, and bob's other server-mate carol joined nowhere.
type fakeEDUStore struct {
	receipts    []persistence.Receipt
	deviceLists []string
	toDevice    []persistence.ToDeviceMessage
	pos         persistence.StreamPos
}

func (f *fakeEDUStore) RoomInfo(_ context.Context, roomID string) (persistence.RoomNID, string, error) {
	if roomID != "!r:here.example" {
		return 0, "", persistence.ErrNotFound
	}
	return 1, "10", nil
}

func (f *fakeEDUStore) MembershipOf(_ context.Context, _ persistence.RoomNID, userID string) (*persistence.Membership, error) {
	if userID == "@alice:here.example" || userID == "@bob:there.example" {
		return &persistence.Membership{Membership: "join"}, nil
	}
	return nil, persistence.ErrNotFound
}

func (f *fakeEDUStore) MembershipsForUser(_ context.Context, userID string) ([]persistence.Membership, error) {
	if userID == "@bob:there.example" {
		return []persistence.Membership{{RoomID: "!r:here.example", UserID: userID, Membership: "join"}}, nil
	}
	return nil, nil
}

func (f *fakeEDUStore) PutReceipt(_ context.Context, r persistence.Receipt) (persistence.StreamPos, error) {
	f.receipts = append(f.receipts, r)
	f.pos++
	return f.pos, nil
}

func (f *fakeEDUStore) RecordDeviceListChange(_ context.Context, userID string) (persistence.StreamPos, error) {
	f.deviceLists = append(f.deviceLists, userID)
	f.pos++
	return f.pos, nil
}

func (f *fakeEDUStore) ListDevices(_ context.Context, localpart string) ([]persistence.Device, error) {
	if localpart != "alice" {
		return nil, nil
	}
	return []persistence.Device{{Localpart: "alice", DeviceID: "A1"}, {Localpart: "alice", DeviceID: "A2"}}, nil
}

func (f *fakeEDUStore) SendToDevice(_ context.Context, msgs []persistence.ToDeviceMessage) ([]persistence.StreamPos, error) {
	out := make([]persistence.StreamPos, len(msgs))
	for i := range msgs {
		f.pos++
		out[i] = f.pos
	}
	f.toDevice = append(f.toDevice, msgs...)
	return out, nil
}

type fakeTyping struct{ set []string }

func (f *fakeTyping) Set(roomID, userID string, typing bool, _ time.Duration) {
	if typing {
		f.set = append(f.set, roomID+" "+userID)
	}
}

type fakePresence struct{ set []string }

func (f *fakePresence) SetRemote(userID, presence string, _ *string, _ time.Time, _ bool) {
	f.set = append(f.set, userID+" "+presence)
}

type fakePublisher struct{ n int }

func (f *fakePublisher) Publish(*messages.RoomAdvanced) { f.n++ }

func edu(t *testing.T, eduType string, content any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"edu_type": eduType, "content": content})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestInboundEDUsApplyOnlyWhatTheOriginMaySay(t *testing.T) {
	store, typing, presence, pub := &fakeEDUStore{}, &fakeTyping{}, &fakePresence{}, &fakePublisher{}
	acl := true
	s := &Server{self: &Identity{ServerName: "here.example"}, toDeviceIDs: &messageIDs{}, edus: EDUReceivers{
		Typing: typing, Presence: presence, Members: store, Users: store, Receipts: store, DeviceLists: store, ToDevice: store, Publish: pub,
		aclAllows: func(context.Context, string, persistence.RoomNID, string, spec.ServerName) (bool, error) {
			return acl, nil
		},
	}}
	const room, bob, carol = "!r:here.example", "@bob:there.example", "@carol:there.example"
	toAlice := func(id string, sender string) json.RawMessage {
		return edu(t, EDUDirectToDevice, map[string]any{"sender": sender, "type": "m.room_key", "message_id": id,
			"messages": map[string]any{"@alice:here.example": map[string]any{"*": map[string]any{"k": id}}, "@eve:else.example": map[string]any{"E": map[string]any{}}}})
	}
	s.handleEDUs(context.Background(), "there.example", []json.RawMessage{
		edu(t, EDUTyping, map[string]any{"room_id": room, "user_id": bob, "typing": true}),
		edu(t, EDUTyping, map[string]any{"room_id": room, "user_id": "@alice:here.example", "typing": true}), // not there's user
		edu(t, EDUTyping, map[string]any{"room_id": room, "user_id": carol, "typing": true}),                 // not joined
		edu(t, EDUTyping, map[string]any{"room_id": "!unknown:here.example", "user_id": bob, "typing": true}),
		edu(t, EDUTyping, map[string]any{"room_id": room, "user_id": bob}), // no "typing"
		edu(t, EDUReceipt, map[string]any{room: map[string]any{
			"m.read":         map[string]any{bob: map[string]any{"event_ids": []string{"$e1"}, "data": map[string]any{"ts": 5}}, carol: map[string]any{"event_ids": []string{"$e1"}, "data": map[string]any{"ts": 5}}},
			"m.read.private": map[string]any{bob: map[string]any{"event_ids": []string{"$e2"}, "data": map[string]any{"ts": 5}}},
		}}),
		edu(t, EDUPresence, map[string]any{"push": []any{
			map[string]any{"user_id": bob, "presence": "online", "last_active_ago": 10},
			map[string]any{"user_id": carol, "presence": "online", "last_active_ago": 10}, // shares no room
			map[string]any{"user_id": "@mallory:else.example", "presence": "online", "last_active_ago": 10},
			map[string]any{"user_id": bob, "presence": "dancing", "last_active_ago": 10},
		}}),
		edu(t, EDUDeviceListUpdate, map[string]any{"user_id": bob, "device_id": "B1", "stream_id": 3}),
		edu(t, EDUSigningKeyUpdate, map[string]any{"user_id": carol}),
		edu(t, EDUDeviceListUpdate, map[string]any{"user_id": "@mallory:else.example", "device_id": "M", "stream_id": 1}),
		toAlice("m1", bob),
		toAlice("m1", bob), // sent again: not delivered twice
		toAlice("m2", "@mallory:else.example"),
		json.RawMessage(`{"edu_type":"m.typing","content":[]}`),
		json.RawMessage(`"not an EDU"`),
		edu(t, "org.example.unknown", map[string]any{}),
	})
	if want := []string{room + " " + bob}; !slices.Equal(typing.set, want) {
		t.Errorf("typing set %v, want %v", typing.set, want)
	}
	if len(store.receipts) != 1 || store.receipts[0].UserID != bob || store.receipts[0].Type != "m.read" || store.receipts[0].EventID != "$e1" || store.receipts[0].TS != 5 {
		t.Errorf("receipts stored: %+v, want bob's m.read only", store.receipts)
	}
	if want := []string{bob + " online"}; !slices.Equal(presence.set, want) {
		t.Errorf("presence set %v, want %v", presence.set, want)
	}
	if want := []string{bob}; !slices.Equal(store.deviceLists, want) {
		t.Errorf("device list changes of %v, want %v", store.deviceLists, want)
	}
	var devices []string
	for _, m := range store.toDevice {
		if m.Sender != bob || m.UserID != "@alice:here.example" {
			t.Errorf("to-device message %+v", m)
		}
		devices = append(devices, m.DeviceID)
	}
	if !slices.Equal(devices, []string{"A1", "A2"}) {
		t.Errorf("to-device messages went to %v, want each of alice's devices once", devices)
	}

	// A room whose server ACL denies the origin takes neither its typing
	// nor its receipts.
	acl = false
	typing.set, store.receipts = nil, nil
	s.handleEDUs(context.Background(), "there.example", []json.RawMessage{
		edu(t, EDUTyping, map[string]any{"room_id": room, "user_id": bob, "typing": true}),
		edu(t, EDUReceipt, map[string]any{room: map[string]any{"m.read": map[string]any{bob: map[string]any{"event_ids": []string{"$e3"}, "data": map[string]any{"ts": 6}}}}}),
	})
	if len(typing.set) != 0 || len(store.receipts) != 0 {
		t.Errorf("with the ACL denying the origin: typing %v, receipts %+v", typing.set, store.receipts)
	}
}
