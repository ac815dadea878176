package storagetest

import (
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// Conformance tests of persistence.AccountAdmin.

func testListAccountsPages(t *testing.T, s persistence.Store) {
	for i, lp := range []string{"carol", "alice", "bob"} {
		acc := persistence.Account{Localpart: lp, PasswordHash: "h-" + lp, IsAdmin: lp == "bob", CreatedTS: int64(i + 1)}
		noErr(t, "CreateAccount", s.CreateAccount(bg, acc))
	}
	page, err := s.ListAccounts(bg, "", 2)
	noErr(t, "ListAccounts", err)
	if len(page) != 2 || page[0].Localpart != "alice" || page[1].Localpart != "bob" || !page[1].IsAdmin || page[1].CreatedTS != 3 {
		t.Fatalf("first page = %+v, want alice, bob (admin, created 3)", page)
	}
	page, err = s.ListAccounts(bg, "bob", 2)
	noErr(t, "ListAccounts", err)
	if len(page) != 1 || page[0].Localpart != "carol" {
		t.Fatalf("second page = %+v, want carol", page)
	}
	if page, err := s.ListAccounts(bg, "", 0); err != nil || len(page) != 0 {
		t.Fatalf("ListAccounts(limit 0) = %+v, %v; want none", page, err)
	}
}

func testDeactivateAccount(t *testing.T, s persistence.Store) {
	noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: "alice", CreatedTS: 1}))
	noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: "bob", CreatedTS: 1}))
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, persistence.Device{Localpart: "alice", DeviceID: "A1"}, "hash-a1"))
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, persistence.Device{Localpart: "alice", DeviceID: "A2"}, "hash-a2"))
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, persistence.Device{Localpart: "bob", DeviceID: "B1"}, "hash-b1"))

	noErr(t, "DeactivateAccount", s.DeactivateAccount(bg, "alice"))
	if acc, err := s.GetAccount(bg, "alice"); err != nil || !acc.Deactivated {
		t.Fatalf("GetAccount after deactivation = %+v, %v; want deactivated", acc, err)
	}
	if devs, err := s.ListDevices(bg, "alice"); err != nil || len(devs) != 0 {
		t.Fatalf("alice's devices after deactivation = %+v, %v; want none", devs, err)
	}
	_, err := s.DeviceByTokenHash(bg, "hash-a1")
	wantErr(t, "deactivated user's token", err, persistence.ErrNotFound)
	if acc, err := s.GetAccount(bg, "bob"); err != nil || acc.Deactivated {
		t.Fatalf("bob = %+v, %v; want active", acc, err)
	}
	if _, err := s.DeviceByTokenHash(bg, "hash-b1"); err != nil {
		t.Fatalf("bob's token after alice's deactivation: %v", err)
	}
	noErr(t, "DeactivateAccount again", s.DeactivateAccount(bg, "alice"))
	wantErr(t, "DeactivateAccount(unknown)", s.DeactivateAccount(bg, "nobody"), persistence.ErrNotFound)
}
