package storagetest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func testCrossSigningKeys(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice, bob = "@alice:x", "@bob:x"
	if keys, err := s.CrossSigningKeys(ctx, alice); err != nil || len(keys) != 0 {
		t.Fatalf("keys of a user without any = %v, %v", keys, err)
	}
	key := func(usage, pub string) persistence.CrossSigningKey {
		return persistence.CrossSigningKey{Usage: usage, KeyID: "ed25519:" + pub,
			Key: json.RawMessage(`{"usage":["` + usage + `"],"keys":{"ed25519:` + pub + `":"` + pub + `"}}`)}
	}
	before, err := s.MaxStreamPos(ctx)
	noErr(t, "MaxStreamPos", err)
	pos, err := s.PutCrossSigningKeys(ctx, alice, []persistence.CrossSigningKey{
		key(persistence.CrossSigningMaster, "M1"), key(persistence.CrossSigningSelfSigning, "S1"),
		key(persistence.CrossSigningUserSigning, "U1"),
	})
	noErr(t, "PutCrossSigningKeys", err)
	if pos <= before {
		t.Fatalf("the keys' device list change is at %d, not after %d", pos, before)
	}
	if max, _ := s.MaxStreamPos(ctx); max < pos {
		t.Fatalf("MaxStreamPos %d behind the committed change at %d", max, pos)
	}
	if got, _ := s.DeviceListChangesBetween(ctx, alice, before, pos); !slices.Equal(got, []string{alice}) {
		t.Fatalf("device list changes after the upload = %v, want alice", got)
	}
	// A new self-signing key replaces the old one; the others stay.
	pos2, err := s.PutCrossSigningKeys(ctx, alice, []persistence.CrossSigningKey{key(persistence.CrossSigningSelfSigning, "S2")})
	noErr(t, "PutCrossSigningKeys", err)
	if pos2 <= pos {
		t.Fatalf("second change at %d, first at %d", pos2, pos)
	}
	keys, err := s.CrossSigningKeys(ctx, alice)
	noErr(t, "CrossSigningKeys", err)
	if len(keys) != 3 || keys["master"].KeyID != "ed25519:M1" || keys["self_signing"].KeyID != "ed25519:S2" ||
		keys["user_signing"].KeyID != "ed25519:U1" || string(keys["self_signing"].Key) != string(key("self_signing", "S2").Key) {
		t.Fatalf("keys = %+v", keys)
	}
	if keys, _ := s.CrossSigningKeys(ctx, bob); len(keys) != 0 {
		t.Fatalf("bob has alice's keys: %+v", keys)
	}
}

func testCrossSigningSignatures(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	const alice, bob, carol = "@alice:x", "@bob:x", "@carol:x"
	before, _ := s.MaxStreamPos(ctx)
	sig := func(signer, signerKey, target, targetKey, value string) persistence.CrossSigningSignature {
		return persistence.CrossSigningSignature{SignerUserID: signer, SignerKeyID: signerKey, TargetUserID: target, TargetKeyID: targetKey, Signature: value}
	}
	positions, err := s.PutCrossSigningSignatures(ctx, []persistence.CrossSigningSignature{
		sig(alice, "ed25519:S1", alice, "DEV1", "a"),
		sig(alice, "ed25519:DEV1", alice, "M1", "b"),
		sig(alice, "ed25519:U1", bob, "BOBM", "c"),
	})
	noErr(t, "PutCrossSigningSignatures", err)
	if len(positions) != 2 || positions[alice] <= before || positions[bob] <= before || positions[alice] == positions[bob] {
		t.Fatalf("positions = %v, want one each for alice and bob after %d", positions, before)
	}
	last := max(positions[alice], positions[bob])
	if got, _ := s.DeviceListChangesBetween(ctx, bob, before, last); !slices.Equal(got, []string{bob}) {
		t.Fatalf("bob's device list changes = %v, want bob: his master key got a signature", got)
	}
	// The same signer key signing the same target again replaces it.
	_, err = s.PutCrossSigningSignatures(ctx, []persistence.CrossSigningSignature{sig(alice, "ed25519:S1", alice, "DEV1", "a2")})
	noErr(t, "PutCrossSigningSignatures", err)
	got, err := s.CrossSigningSignatures(ctx, alice)
	noErr(t, "CrossSigningSignatures", err)
	want := []persistence.CrossSigningSignature{
		sig(alice, "ed25519:S1", alice, "DEV1", "a2"),
		sig(alice, "ed25519:DEV1", alice, "M1", "b"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("alice's signatures = %+v, want %+v", got, want)
	}
	if got, _ := s.CrossSigningSignatures(ctx, bob); !slices.Equal(got, []persistence.CrossSigningSignature{sig(alice, "ed25519:U1", bob, "BOBM", "c")}) {
		t.Fatalf("bob's signatures = %+v", got)
	}
	if got, _ := s.CrossSigningSignatures(ctx, carol); len(got) != 0 {
		t.Fatalf("carol's signatures = %+v", got)
	}
}
