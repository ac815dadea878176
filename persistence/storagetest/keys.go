package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func testDeviceKeysAndOneTimeKeys(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice = "@alice:x"
	changed, pos, err := s.PutDeviceKeys(ctx, alice, "D1", json.RawMessage(`{"keys":{"ed25519:D1":"k1"}}`))
	noErr(t, "PutDeviceKeys", err)
	if !changed || pos == 0 {
		t.Fatalf("first upload: changed %v at %d, want a change", changed, pos)
	}
	if changed, _, _ := s.PutDeviceKeys(ctx, alice, "D1", json.RawMessage(`{"keys":{"ed25519:D1":"k1"}}`)); changed {
		t.Fatal("the same keys again must not count as a change")
	}
	changed, pos2, err := s.PutDeviceKeys(ctx, alice, "D1", json.RawMessage(`{"keys":{"ed25519:D1":"k2"}}`))
	noErr(t, "PutDeviceKeys", err)
	if !changed || pos2 <= pos {
		t.Fatalf("new keys: changed %v at %d (first at %d)", changed, pos2, pos)
	}
	_, _, err = s.PutDeviceKeys(ctx, alice, "D2", json.RawMessage(`{"keys":{}}`))
	noErr(t, "PutDeviceKeys", err)
	all, err := s.DeviceKeys(ctx, alice, nil)
	noErr(t, "DeviceKeys", err)
	if len(all) != 2 || string(all["D1"]) != `{"keys":{"ed25519:D1":"k2"}}` {
		t.Fatalf("DeviceKeys = %s", all)
	}
	if some, _ := s.DeviceKeys(ctx, alice, []string{"D2", "D9"}); len(some) != 1 || some["D2"] == nil {
		t.Fatalf("DeviceKeys(D2, D9) = %s", some)
	}

	otk := func(alg, id string) persistence.OneTimeKey {
		return persistence.OneTimeKey{Algorithm: alg, KeyID: id, Key: json.RawMessage(`{"key":"` + id + `"}`)}
	}
	noErr(t, "AddOneTimeKeys", s.AddOneTimeKeys(ctx, alice, "D1", []persistence.OneTimeKey{
		otk("signed_curve25519", "AAAB"), otk("signed_curve25519", "AAAA"), otk("curve25519", "X"),
	}))
	// A key ID already stored keeps its key.
	noErr(t, "AddOneTimeKeys", s.AddOneTimeKeys(ctx, alice, "D1", []persistence.OneTimeKey{
		{Algorithm: "signed_curve25519", KeyID: "AAAA", Key: json.RawMessage(`"replaced"`)},
	}))
	counts, err := s.OneTimeKeyCounts(ctx, alice, "D1")
	noErr(t, "OneTimeKeyCounts", err)
	if counts["signed_curve25519"] != 2 || counts["curve25519"] != 1 {
		t.Fatalf("counts = %v", counts)
	}
	noErr(t, "SetFallbackKeys", s.SetFallbackKeys(ctx, alice, "D1", []persistence.OneTimeKey{otk("signed_curve25519", "FB")}))
	if types, _ := s.UnusedFallbackKeyTypes(ctx, alice, "D1"); !slices.Equal(types, []string{"signed_curve25519"}) {
		t.Fatalf("unused fallback types = %v", types)
	}
	var claimed []string
	for range 3 {
		k, err := s.ClaimKey(ctx, alice, "D1", "signed_curve25519")
		noErr(t, "ClaimKey", err)
		claimed = append(claimed, k.KeyID+"="+string(k.Key))
	}
	want := []string{`AAAA={"key":"AAAA"}`, `AAAB={"key":"AAAB"}`, `FB={"key":"FB"}`}
	if !slices.Equal(claimed, want) {
		t.Fatalf("claims = %v, want both one-time keys then the fallback", claimed)
	}
	if types, _ := s.UnusedFallbackKeyTypes(ctx, alice, "D1"); len(types) != 0 {
		t.Fatalf("the claimed fallback key is still unused: %v", types)
	}
	if k, err := s.ClaimKey(ctx, alice, "D1", "signed_curve25519"); err != nil || k.KeyID != "FB" {
		t.Fatalf("a used fallback key is handed out again until replaced: %+v, %v", k, err)
	}
	_, err = s.ClaimKey(ctx, alice, "D2", "signed_curve25519")
	wantErr(t, "ClaimKey of a device without keys", err, persistence.ErrNotFound)

	noErr(t, "DeleteDeviceKeys", s.DeleteDeviceKeys(ctx, alice, "D1"))
	if all, _ := s.DeviceKeys(ctx, alice, nil); len(all) != 1 {
		t.Fatalf("after deleting D1: %s", all)
	}
	if c, _ := s.OneTimeKeyCounts(ctx, alice, "D1"); len(c) != 0 {
		t.Fatalf("D1's one-time keys survived its deletion: %v", c)
	}
	if _, err := s.ClaimKey(ctx, alice, "D1", "curve25519"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("claim after deletion: %v", err)
	}
}

func testDeviceListChanges(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice, bob, carol = "@alice:x", "@bob:x", "@carol:x"
	r := newRoom(s, "!keys:x")
	r.create(t, alice)
	res := r.mustCommit(t, r.member(bob, "join"))
	start := res.StreamPos[0]
	pBob, err := s.RecordDeviceListChange(ctx, bob)
	noErr(t, "RecordDeviceListChange", err)
	_, err = s.RecordDeviceListChange(ctx, carol)
	noErr(t, "RecordDeviceListChange", err)
	pAlice, err := s.RecordDeviceListChange(ctx, alice)
	noErr(t, "RecordDeviceListChange", err)
	got, err := s.DeviceListChangesBetween(ctx, alice, start, pAlice)
	noErr(t, "DeviceListChangesBetween", err)
	if !slices.Equal(got, []string{alice, bob}) {
		t.Fatalf("alice sees changes of %v, want herself and bob (not carol, who shares no room)", got)
	}
	if got, _ := s.DeviceListChangesBetween(ctx, alice, pBob, pAlice); !slices.Equal(got, []string{alice}) {
		t.Fatalf("after bob's change: %v", got)
	}
	if got, _ := s.DeviceListChangesBetween(ctx, carol, start, pAlice); !slices.Equal(got, []string{carol}) {
		t.Fatalf("carol sees %v, want only herself", got)
	}
	if got, err := s.LatestDeviceListChange(ctx, bob); err != nil || got != pBob {
		t.Fatalf("bob's latest change: %d, %v; want %d", got, err, pBob)
	}
	if got, err := s.LatestDeviceListChange(ctx, "@nobody:x"); err != nil || got != 0 {
		t.Fatalf("latest change of a user without any: %d, %v; want 0", got, err)
	}
}

func testToDevice(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	msg := func(dev, body string) persistence.ToDeviceMessage {
		return persistence.ToDeviceMessage{UserID: "@bob:x", DeviceID: dev, Sender: "@alice:x", Type: "m.room_key", Content: json.RawMessage(`{"b":"` + body + `"}`)}
	}
	ps, err := s.SendToDevice(ctx, []persistence.ToDeviceMessage{msg("B1", "1"), msg("B2", "2"), msg("B1", "3")})
	noErr(t, "SendToDevice", err)
	if len(ps) != 3 || ps[1] <= ps[0] || ps[2] <= ps[1] {
		t.Fatalf("positions %v", ps)
	}
	if max, _ := s.MaxStreamPos(ctx); max < ps[2] {
		t.Fatalf("MaxStreamPos %d behind committed messages at %d", max, ps[2])
	}
	got, err := s.ToDeviceBetween(ctx, "@bob:x", "B1", 0, ps[2], 10)
	noErr(t, "ToDeviceBetween", err)
	if len(got) != 2 || string(got[1].Content) != `{"b":"3"}` || got[0].Sender != "@alice:x" || got[0].Type != "m.room_key" {
		t.Fatalf("B1's messages = %+v", got)
	}
	if lim, _ := s.ToDeviceBetween(ctx, "@bob:x", "B1", 0, ps[2], 1); len(lim) != 1 || lim[0].StreamPos != ps[0] {
		t.Fatalf("limit 1 = %+v", lim)
	}
	// Delivered messages go; a later message still takes a later position
	// even when the highest stored row was deleted.
	noErr(t, "DeleteToDeviceUpTo", s.DeleteToDeviceUpTo(ctx, "@bob:x", "B1", ps[2]))
	noErr(t, "DeleteToDeviceUpTo", s.DeleteToDeviceUpTo(ctx, "@bob:x", "B2", ps[2]))
	if left, _ := s.ToDeviceBetween(ctx, "@bob:x", "B1", 0, ps[2], 10); len(left) != 0 {
		t.Fatalf("acknowledged messages remain: %+v", left)
	}
	next, err := s.SendToDevice(ctx, []persistence.ToDeviceMessage{msg("B1", "4")})
	noErr(t, "SendToDevice", err)
	if next[0] <= ps[2] {
		t.Fatalf("a position was handed out twice: %d after %d was deleted", next[0], ps[2])
	}
	if _, err := s.SendToDevice(ctx, []persistence.ToDeviceMessage{{UserID: "@bob:x", DeviceID: "B1", Content: json.RawMessage("{")}}); err == nil {
		t.Fatal("SendToDevice stored content that is not JSON")
	}
}

func testPruneDeviceKeys(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice = "@alice:x"
	noErr(t, "CreateAccount", s.CreateAccount(ctx, persistence.Account{Localpart: "alice", CreatedTS: 1}))
	for _, id := range []string{"KEEP", "GONE"} {
		noErr(t, "UpsertDevice", s.UpsertDevice(ctx, persistence.Device{Localpart: "alice", DeviceID: id, CreatedTS: 1}, "hash-"+id))
		_, _, err := s.PutDeviceKeys(ctx, alice, id, json.RawMessage(`{"keys":{}}`))
		noErr(t, "PutDeviceKeys", err)
		noErr(t, "AddOneTimeKeys", s.AddOneTimeKeys(ctx, alice, id, []persistence.OneTimeKey{{Algorithm: "a", KeyID: "1", Key: json.RawMessage(`"k"`)}}))
	}
	if pruned, _, err := s.PruneDeviceKeys(ctx, alice, "alice"); err != nil || pruned {
		t.Fatalf("nothing to prune yet: pruned %v, %v", pruned, err)
	}
	noErr(t, "DeleteDevice", s.DeleteDevice(ctx, "alice", "GONE"))
	pruned, pos, err := s.PruneDeviceKeys(ctx, alice, "alice")
	noErr(t, "PruneDeviceKeys", err)
	if !pruned || pos == 0 {
		t.Fatalf("after deleting GONE: pruned %v at %d, want a device list change", pruned, pos)
	}
	keys, _ := s.DeviceKeys(ctx, alice, nil)
	if len(keys) != 1 || keys["KEEP"] == nil {
		t.Fatalf("keys after pruning: %s", keys)
	}
	if c, _ := s.OneTimeKeyCounts(ctx, alice, "GONE"); len(c) != 0 {
		t.Fatalf("GONE's one-time keys survived: %v", c)
	}
	if changed, _ := s.DeviceListChangesBetween(ctx, alice, pos-1, pos); len(changed) != 1 {
		t.Fatalf("the prune recorded no device list change: %v", changed)
	}
}
