package storagetest

import (
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// Conformance tests of the device management the client API offers
// (rename, delete several, log out every other device).

// deviceIDs lists a user's device IDs, in the store's order.
func deviceIDs(t *testing.T, s persistence.Store, localpart string) []string {
	t.Helper()
	devs, err := s.ListDevices(bg, localpart)
	noErr(t, "ListDevices", err)
	ids := []string{}
	for _, d := range devs {
		ids = append(ids, d.DeviceID)
	}
	return ids
}

func testDeviceManagement(t *testing.T, s persistence.Store) {
	for _, lp := range []string{"alice", "bob"} {
		noErr(t, "CreateAccount", s.CreateAccount(bg, persistence.Account{Localpart: lp, CreatedTS: 1}))
	}
	for _, id := range []string{"A1", "A2", "A3", "A4"} {
		dev := persistence.Device{Localpart: "alice", DeviceID: id, DisplayName: "old " + id, CreatedTS: 5}
		noErr(t, "UpsertDevice", s.UpsertDevice(bg, dev, "hash-"+id))
	}
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, persistence.Device{Localpart: "bob", DeviceID: "A1"}, "hash-bob"))

	// A rename keeps the token and the creation time.
	noErr(t, "SetDeviceDisplayName", s.SetDeviceDisplayName(bg, "alice", "A1", "Phone ✓"))
	d, err := s.DeviceByTokenHash(bg, "hash-A1")
	if err != nil || d.DisplayName != "Phone ✓" || d.CreatedTS != 5 {
		t.Fatalf("renamed device = %+v, %v; want Phone ✓ created at 5, same token", d, err)
	}
	if d, err := s.DeviceByTokenHash(bg, "hash-bob"); err != nil || d.DisplayName != "" {
		t.Fatalf("bob's device of the same ID = %+v, %v; want it unrenamed", d, err)
	}
	wantErr(t, "SetDeviceDisplayName(unknown device)", s.SetDeviceDisplayName(bg, "alice", "NOPE", "x"), persistence.ErrNotFound)
	wantErr(t, "SetDeviceDisplayName(unknown user)", s.SetDeviceDisplayName(bg, "nobody", "A1", "x"), persistence.ErrNotFound)

	// Deleting several: unknown IDs are skipped, other users untouched.
	noErr(t, "DeleteDevices", s.DeleteDevices(bg, "alice", []string{"A2", "NOPE", "A3"}))
	if got := deviceIDs(t, s, "alice"); !slices.Equal(got, []string{"A1", "A4"}) {
		t.Fatalf("after DeleteDevices alice has %v, want [A1 A4]", got)
	}
	_, err = s.DeviceByTokenHash(bg, "hash-A2")
	wantErr(t, "deleted device's token", err, persistence.ErrNotFound)
	noErr(t, "DeleteDevices(none)", s.DeleteDevices(bg, "alice", nil))

	// Every device but one.
	noErr(t, "UpsertDevice", s.UpsertDevice(bg, persistence.Device{Localpart: "alice", DeviceID: "A5"}, "hash-A5"))
	noErr(t, "DeleteDevicesExcept", s.DeleteDevicesExcept(bg, "alice", "A4"))
	if got := deviceIDs(t, s, "alice"); !slices.Equal(got, []string{"A4"}) {
		t.Fatalf("after DeleteDevicesExcept alice has %v, want [A4]", got)
	}
	if _, err := s.DeviceByTokenHash(bg, "hash-A4"); err != nil {
		t.Fatalf("the kept device's token: %v", err)
	}
	if got := deviceIDs(t, s, "bob"); !slices.Equal(got, []string{"A1"}) {
		t.Fatalf("bob's devices = %v, want [A1]", got)
	}
	noErr(t, "DeleteDevicesExcept of nobody", s.DeleteDevicesExcept(bg, "nobody", "X"))
}
