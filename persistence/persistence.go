// Package persistence defines what Soma stores and how its services read and
// write it; the backends (postgres, sqlite) implement these interfaces and
// pass one shared conformance suite (persistence/storagetest).
package persistence

import (
	"context"
	"errors"
)

// Numeric IDs. Zero always means "none".
type (
	RoomNID          int64
	EventNID         int64
	EventTypeNID     int64
	StateKeyNID      int64
	StateBlockNID    int64
	StateSnapshotNID int64
	// StreamPos orders every event the server stores, across rooms. Readers
	// only ever see a prefix of it (see Store.MaxStreamPos).
	StreamPos int64
)

// MaxSnapshotBlocks is how many blocks a snapshot may reference before the
// next state change compacts them into one.
const MaxSnapshotBlocks = 64

var (
	// ErrNotFound is returned when the requested row does not exist.
	ErrNotFound = errors.New("persistence: not found")
	// ErrUserExists is returned by CreateAccount for a taken localpart.
	ErrUserExists = errors.New("persistence: user exists")
	// ErrRoomExists is returned by CommitEvents when NewRoom names a room
	// that is already stored.
	ErrRoomExists = errors.New("persistence: room exists")
	// ErrFenced is returned by CommitEvents when the room head's epoch is no
	// longer the committer's: another activation owns the room now.
	ErrFenced = errors.New("persistence: room claimed by another activation")
)

// Store is everything a Soma node keeps. Each service consumes the narrow
// part it needs.
type Store interface {
	AccountStore
	AccountAdmin
	RoomStore
	RoomReader
	RoomInspector
	RelationsReader
	EventSearcher
	UserStreams
	KeyStore
	CrossSigningStore
	KeyBackupStore
	MediaStore
	Directory
	ServerKeyStore
	PusherStore
	FederationQueue
	JoinedServers
	// MaxStreamPos is the highest position below which every event is
	// committed and readable: a reader bounded by it never misses an event
	// that commits later with a lower position.
	MaxStreamPos(ctx context.Context) (StreamPos, error)
	// Ping runs a trivial query: it fails when the database does not
	// answer, or no longer holds the schema this build migrated it to.
	Ping(ctx context.Context) error
	Close() error
}

// Account is a local user.
type Account struct {
	Localpart    string
	PasswordHash string
	IsAdmin      bool
	Deactivated  bool
	CreatedTS    int64
}

// Device is a login session of a local user.
type Device struct {
	Localpart   string
	DeviceID    string
	DisplayName string
	CreatedTS   int64
}

// Profile is a user's global display name and avatar.
type Profile struct {
	DisplayName string
	AvatarURL   string
}

// AccountStore holds accounts, devices (with hashed access tokens) and profiles.
type AccountStore interface {
	// CreateAccount stores a new account and its empty profile; ErrUserExists
	// if the localpart is taken.
	CreateAccount(ctx context.Context, acc Account) error
	// GetAccount returns ErrNotFound for an unknown localpart.
	GetAccount(ctx context.Context, localpart string) (*Account, error)
	// SetPasswordHash returns ErrNotFound for an unknown localpart.
	SetPasswordHash(ctx context.Context, localpart, hash string) error
	// UpsertDevice creates the device or, when it exists, gives it the new
	// token hash (invalidating the old token) and display name.
	UpsertDevice(ctx context.Context, dev Device, tokenHash string) error
	// DeviceByTokenHash returns ErrNotFound for an unknown token.
	DeviceByTokenHash(ctx context.Context, tokenHash string) (*Device, error)
	// ListDevices returns the user's devices ordered by device ID.
	ListDevices(ctx context.Context, localpart string) ([]Device, error)
	// DeleteDevice returns ErrNotFound for an unknown device.
	DeleteDevice(ctx context.Context, localpart, deviceID string) error
	DeleteAllDevices(ctx context.Context, localpart string) error
	// DeleteDevices deletes those of the user's devices that exist among
	// deviceIDs, in one transaction; unknown IDs are not an error.
	DeleteDevices(ctx context.Context, localpart string, deviceIDs []string) error
	// DeleteDevicesExcept deletes every device of the user but keepDeviceID
	// (a password change keeps the device that made it).
	DeleteDevicesExcept(ctx context.Context, localpart, keepDeviceID string) error
	// SetDeviceDisplayName renames a device, keeping its token; ErrNotFound
	// for an unknown device.
	SetDeviceDisplayName(ctx context.Context, localpart, deviceID, name string) error
	// GetProfile returns ErrNotFound for an unknown localpart.
	GetProfile(ctx context.Context, localpart string) (Profile, error)
	// SetDisplayName and SetAvatarURL return ErrNotFound for an unknown
	// localpart.
	SetDisplayName(ctx context.Context, localpart, name string) error
	SetAvatarURL(ctx context.Context, localpart, url string) error
}

// AccountAdmin is what the admin API needs of accounts besides AccountStore.
type AccountAdmin interface {
	// ListAccounts returns up to limit accounts whose localpart is greater
	// than after, in ascending order; none when limit < 1. Pass the last
	// localpart as after to read the next page.
	ListAccounts(ctx context.Context, after string, limit int) ([]Account, error)
	// DeactivateAccount marks the account deactivated and deletes all its
	// devices (and so their tokens) in one transaction; ErrNotFound for an
	// unknown localpart. Deactivating twice is not an error.
	DeactivateAccount(ctx context.Context, localpart string) error
}

// RoomHead is what an activation of a room actor loads to resume the room.
type RoomHead struct {
	RoomNID     RoomNID
	RoomID      string
	Version     string
	Snapshot    StateSnapshotNID
	Blocks      []StateBlockNID
	Extremities []string
	Depth       int64
	Epoch       int64
}

// NewEvent is an event the room actor has built, authorised and wants stored.
type NewEvent struct {
	EventID        string
	JSON           []byte // exact signed JSON
	Type           string
	StateKey       *string // nil for non-state events
	Sender         string
	Depth          int64
	OriginServerTS int64
	// Membership is the new membership of *StateKey for m.room.member.
	Membership string
	// Txn, when set, records (user, device, txnID) → event for idempotency.
	Txn *TxnKey
	// Redacts, for an m.room.redaction the room applies, is the event it
	// redacts: reads then show that event redacted (see StoredEvent).
	Redacts string
	// Outlier stores the event outside the room's timeline: an event
	// learnt over federation (the state and auth chain of a room joined
	// remotely, an event fetched to check another) that the room does not
	// apply. It takes a negative stream position, which no stream read
	// reaches, no state before it (0), and no projection (membership,
	// search, relations, redactions, txn) sees it.
	Outlier bool
	// Promote says the event is stored already, as an outlier, and joins
	// the timeline now: it takes a stream position and its state before,
	// and the projections see it, as if it were inserted.
	Promote bool
	// StateBefore, when not nil, is the whole state of the room just
	// before this event, replacing the state the batch had reached: a
	// remote event whose prev events are not the room's head, or the join
	// that brings a room joined over federation its state. Every event it
	// names must be stored already or come earlier in the batch.
	StateBefore []StateRef
	// Destinations are the remote servers the event is to be sent to: the
	// commit queues it for each (FederationQueue), duplicates once.
	Destinations []string
}

// StateRef names the event that is the state for (Type, StateKey) in a
// state given whole; Membership is its membership for m.room.member.
type StateRef struct {
	Type       string
	StateKey   string
	EventID    string
	Membership string
}

// TxnKey identifies a client transaction: the spec scopes txnIds per device.
type TxnKey struct {
	UserID   string
	DeviceID string
	TxnID    string
}

// NewRoom asks CommitEvents to create the room in the same transaction.
type NewRoom struct {
	RoomID  string
	Version string
}

// CommitRequest is one batch of a room's events, written atomically.
type CommitRequest struct {
	NewRoom *NewRoom // set for the batch that creates the room
	RoomNID RoomNID  // set otherwise
	Epoch   int64    // must equal the head's epoch (the fence)
	// Snapshot and Blocks describe the room's current state before the batch
	// (zero and nil for a new room). Snapshot must be the head's; Blocks, when
	// given, must be the head's too: the store builds on the head's blocks.
	Snapshot StateSnapshotNID
	Blocks   []StateBlockNID
	Events   []NewEvent // in order; each state event advances the state
	// StateAfter, when not nil, is the room's whole current state after
	// the batch (state resolution between forward extremities decided
	// it), replacing the state the batch reached; as for
	// NewEvent.StateBefore, every event it names must be stored.
	StateAfter []StateRef
	// Rejected are remote events the room refused, recorded so that they
	// are not checked again (persistence.RoomStore.RejectedReason).
	Rejected []Rejection
	// The head after the batch.
	Extremities []string
	Depth       int64
}

// Rejection is a remote event a room refused, and why.
type Rejection struct {
	EventID string
	Reason  string
}

// CommitResult tells the actor what the batch became.
type CommitResult struct {
	RoomNID    RoomNID
	EventNIDs  []EventNID
	StreamPos  []StreamPos
	Snapshot   StateSnapshotNID
	Blocks     []StateBlockNID
	Epoch      int64
	LastStream StreamPos
}

// RoomStore is the write side of rooms: only a room's actor calls it.
type RoomStore interface {
	// ClaimRoom starts an activation: it bumps the head's epoch and returns
	// the head carrying the new epoch. ErrNotFound for an unknown room.
	ClaimRoom(ctx context.Context, roomID string) (*RoomHead, error)
	// CommitEvents stores a batch atomically: events, state blocks and
	// snapshots, head, projections, txn mappings. ErrFenced when Epoch is
	// stale, ErrRoomExists when NewRoom exists, ErrNotFound for an unknown
	// RoomNID, an error when Snapshot is not the head's; nothing is written
	// then. When it returns, MaxStreamPos is at least LastStream unless a
	// concurrent commit with a lower position is still in progress.
	CommitEvents(ctx context.Context, req CommitRequest) (*CommitResult, error)
	// SnapshotEvents returns the state events of a snapshot, oldest first:
	// none for snapshot 0, ErrNotFound for an unknown snapshot.
	SnapshotEvents(ctx context.Context, snapshot StateSnapshotNID) ([]StoredEvent, error)
	// RejectedReason returns why the room refused a remote event, or
	// ErrNotFound when it did not.
	RejectedReason(ctx context.Context, eventID string) (string, error)
	// LookupTxn returns the event ID recorded for a client transaction, or
	// ErrNotFound.
	LookupTxn(ctx context.Context, key TxnKey) (string, error)
	// EventByID returns ErrNotFound for an unknown event (the room reads
	// the target of a redaction).
	EventByID(ctx context.Context, eventID string) (*StoredEvent, error)
}

// StoredEvent is an event as read back.
type StoredEvent struct {
	NID            EventNID
	RoomNID        RoomNID
	RoomID         string
	RoomVersion    string
	EventID        string
	Type           string
	StateKey       *string
	Sender         string
	Depth          int64
	OriginServerTS int64
	StreamPos      StreamPos
	// StateBefore is the room's state snapshot just before this event.
	StateBefore StateSnapshotNID
	JSON        []byte
	// RedactedBy and Redaction are the ID and JSON of the redaction the
	// room applied to this event ("" and nil when none). JSON stays the
	// event as it was sent; readers for clients redact it.
	RedactedBy string
	Redaction  []byte
}

// Membership is a user's current membership of a room.
type Membership struct {
	RoomID     string
	RoomNID    RoomNID
	UserID     string
	Membership string // join, invite, leave, ban, knock
	EventID    string
	EventNID   EventNID
	StreamPos  StreamPos
	Forgotten  bool
}

// RoomReader is the read side of rooms, used by the client API and sync.
// The range reads (RoomEvents, RoomsWithEvents, StateEventsBetween) return
// what lies in the bounds they are given: pass MaxStreamPos as the upper
// bound. The projections (CurrentState, memberships) are the latest
// committed and may be ahead of MaxStreamPos for a moment: compare their
// StreamPos with the reader's bound where that matters.
type RoomReader interface {
	// RoomInfo returns ErrNotFound for an unknown room.
	RoomInfo(ctx context.Context, roomID string) (nid RoomNID, version string, err error)
	// EventByID returns ErrNotFound for an unknown event.
	EventByID(ctx context.Context, eventID string) (*StoredEvent, error)
	// RoomEvents returns up to limit events of a room with from < pos <= to,
	// oldest first when forward, newest first otherwise; none when limit < 1.
	RoomEvents(ctx context.Context, room RoomNID, from, to StreamPos, limit int, forward bool) ([]StoredEvent, error)
	// RoomsWithEvents returns which of rooms have events with from < pos <= to.
	RoomsWithEvents(ctx context.Context, rooms []RoomNID, from, to StreamPos) ([]RoomNID, error)
	// EventsInRooms returns up to limit events of the rooms with
	// from < pos <= to, newest first; none when limit < 1.
	EventsInRooms(ctx context.Context, rooms []RoomNID, from, to StreamPos, limit int) ([]StoredEvent, error)
	// CurrentState returns the current state events of a room, in no
	// particular order.
	CurrentState(ctx context.Context, room RoomNID) ([]StoredEvent, error)
	// CurrentStateEvent returns ErrNotFound when the room has no such state.
	CurrentStateEvent(ctx context.Context, room RoomNID, eventType, stateKey string) (*StoredEvent, error)
	// StateEventAt returns the state event for (type, stateKey) in a
	// snapshot, or ErrNotFound.
	StateEventAt(ctx context.Context, snapshot StateSnapshotNID, eventType, stateKey string) (*StoredEvent, error)
	// StateEventsBetween returns the state events of a room with
	// from < pos <= to, oldest first.
	StateEventsBetween(ctx context.Context, room RoomNID, from, to StreamPos) ([]StoredEvent, error)
	// MembershipsForUser returns every room the user has a membership in.
	MembershipsForUser(ctx context.Context, userID string) ([]Membership, error)
	// MembershipOf returns ErrNotFound when the user never had one.
	MembershipOf(ctx context.Context, room RoomNID, userID string) (*Membership, error)
	// JoinedMemberCount counts the room's joined members.
	JoinedMemberCount(ctx context.Context, room RoomNID) (int, error)
	// ServerJoined says whether a user of serverName (what follows the
	// first ':' of the user ID, exactly) is joined to the room now.
	ServerJoined(ctx context.Context, room RoomNID, serverName string) (bool, error)
	// TxnIDForEvent returns the transaction ID the device sent the event
	// with, or ErrNotFound.
	TxnIDForEvent(ctx context.Context, eventID, userID, deviceID string) (string, error)
	// ForgetRoom marks a left room as forgotten for the user, until their
	// membership changes; ErrNotFound when they have none. Refusing to forget
	// a joined room is the caller's rule.
	ForgetRoom(ctx context.Context, room RoomNID, userID string) error
}

// StateBlockEntry is one entry of a state block: the event that is the
// state for (Type, StateKey) wherever the block is the last to say so.
type StateBlockEntry struct {
	Block    StateBlockNID
	Type     string
	StateKey string
	EventNID EventNID
	// EventID is "" when the entry's event is not stored.
	EventID string
}

// RoomInspector reads a room's storage as stored, for tools that check it
// against the room's events (somactl verify-rooms). Nothing in it claims a
// room or writes.
type RoomInspector interface {
	// RoomIDs returns up to limit room IDs greater than after, in
	// ascending order; none when limit < 1. Pass the last one as after to
	// read the next page.
	RoomIDs(ctx context.Context, after string, limit int) ([]string, error)
	// RoomHead returns the room's head without claiming the room: Epoch is
	// the live activation's. ErrNotFound for an unknown room or one
	// without a head.
	RoomHead(ctx context.Context, roomID string) (*RoomHead, error)
	// SnapshotBlocks returns a snapshot's blocks in order (a later block's
	// entry for a tuple overrides an earlier one's): none for snapshot 0,
	// ErrNotFound for an unknown snapshot.
	SnapshotBlocks(ctx context.Context, snapshot StateSnapshotNID) ([]StateBlockNID, error)
	// StateBlockEntries returns the entries of the blocks, ordered by
	// block. A block that is not stored has no entries; an entry whose type
	// or state key NID is not stored is an error.
	StateBlockEntries(ctx context.Context, blocks []StateBlockNID) ([]StateBlockEntry, error)
	// RoomMemberships returns every membership row of a room, ordered by
	// user ID.
	RoomMemberships(ctx context.Context, room RoomNID) ([]Membership, error)
}
