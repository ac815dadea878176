package persistence

import (
	"context"
	"encoding/json"
)

// End-to-end encryption: devices' identity keys, one-time and fallback
// keys, to-device messages and the device list changes that tell other
// users to refetch keys. To-device messages and device list changes take
// positions on the events' stream (see UserStreams).

// OneTimeKey is a one-time or fallback key: its ID ("algorithm:id") and
// the key object (a string for unsigned keys, an object for signed ones).
type OneTimeKey struct {
	Algorithm string
	KeyID     string // the part after the algorithm
	Key       json.RawMessage
}

// ToDeviceMessage is a message for one device of a local user.
type ToDeviceMessage struct {
	UserID, DeviceID string
	Sender           string
	Type             string
	Content          json.RawMessage
	StreamPos        StreamPos
}

// KeyStore keeps the end-to-end encryption data of local devices.
type KeyStore interface {
	// PutDeviceKeys stores a device's identity keys; changed reports
	// whether they differ from the stored ones, in which case a device
	// list change was recorded at pos.
	PutDeviceKeys(ctx context.Context, userID, deviceID string, keys json.RawMessage) (changed bool, pos StreamPos, err error)
	// DeviceKeys returns the identity keys of the user's devices, by
	// device ID; only those of deviceIDs when it is not empty.
	DeviceKeys(ctx context.Context, userID string, deviceIDs []string) (map[string]json.RawMessage, error)
	// AddOneTimeKeys stores one-time keys; a key ID already stored for the
	// device is kept as it was.
	AddOneTimeKeys(ctx context.Context, userID, deviceID string, keys []OneTimeKey) error
	// OneTimeKeyCounts counts the device's unclaimed one-time keys per
	// algorithm.
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error)
	// SetFallbackKeys replaces the device's fallback key of each
	// algorithm given (as unused).
	SetFallbackKeys(ctx context.Context, userID, deviceID string, keys []OneTimeKey) error
	// UnusedFallbackKeyTypes lists the algorithms of the device's fallback
	// keys that no claim used yet.
	UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error)
	// ClaimKey removes and returns one one-time key of the algorithm for
	// the device, or else returns its fallback key (marking it used);
	// ErrNotFound when it has neither.
	ClaimKey(ctx context.Context, userID, deviceID, algorithm string) (*OneTimeKey, error)
	// RecordDeviceListChange notes that the user's devices changed (a
	// device was added or deleted) and returns its position.
	RecordDeviceListChange(ctx context.Context, userID string) (StreamPos, error)
	// DeviceListChangesBetween returns the users, among userID and those
	// sharing a joined room with userID, whose devices changed in
	// (from, to].
	DeviceListChangesBetween(ctx context.Context, userID string, from, to StreamPos) ([]string, error)
	// LatestDeviceListChange returns the position of the user's latest
	// device list change, 0 when there was none: the version of the
	// device list that federation reports as stream_id.
	LatestDeviceListChange(ctx context.Context, userID string) (StreamPos, error)
	// SendToDevice stores messages (each for one device) atomically and
	// returns their positions, in order.
	SendToDevice(ctx context.Context, msgs []ToDeviceMessage) ([]StreamPos, error)
	// ToDeviceBetween returns up to limit messages for the device with
	// positions in (from, to], oldest first.
	ToDeviceBetween(ctx context.Context, userID, deviceID string, from, to StreamPos, limit int) ([]ToDeviceMessage, error)
	// DeleteToDeviceUpTo deletes the device's messages at or below pos:
	// the device's sync from pos acknowledged them.
	DeleteToDeviceUpTo(ctx context.Context, userID, deviceID string, pos StreamPos) error
	// DeleteDeviceKeys removes a deleted device's keys and messages.
	DeleteDeviceKeys(ctx context.Context, userID, deviceID string) error
	// PruneDeviceKeys removes the keys and messages of the user's devices
	// that no longer exist (localpart's rows in the devices table) and, if
	// any had identity keys, records a device list change: pruned reports
	// that, and pos is the change's position.
	PruneDeviceKeys(ctx context.Context, userID, localpart string) (pruned bool, pos StreamPos, err error)
}
