package persistence

import (
	"context"
	"errors"
)

// The room directory and the user directory: local room aliases, which
// rooms are published in the public room list, and the search of local
// users. These tables belong to the directory, not to any room: the
// client API writes them directly (room state, such as the canonical
// alias, still goes through the room's actor).

// ErrAliasExists is returned by InsertRoomAlias for a taken alias.
var ErrAliasExists = errors.New("persistence: room alias exists")

// Room directory visibilities.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
)

// RoomAlias maps a local alias (#local:server_name) to a room.
type RoomAlias struct {
	Alias     string
	RoomID    string
	Creator   string // the user ID that created the mapping
	CreatedTS int64  // Unix milliseconds
}

// PublicRoom is a room published in the room directory.
type PublicRoom struct {
	RoomID        string
	RoomNID       RoomNID
	JoinedMembers int
}

// DirectoryUser is a local user as the user directory finds them.
type DirectoryUser struct {
	Localpart   string
	DisplayName string
	AvatarURL   string
}

// Directory keeps room aliases and the public room list, and searches
// local users.
type Directory interface {
	// InsertRoomAlias stores a new alias; ErrAliasExists when it is taken
	// (whatever room it names).
	InsertRoomAlias(ctx context.Context, a RoomAlias) error
	// RoomAlias returns ErrNotFound for an unknown alias.
	RoomAlias(ctx context.Context, alias string) (*RoomAlias, error)
	// DeleteRoomAlias returns ErrNotFound for an unknown alias.
	DeleteRoomAlias(ctx context.Context, alias string) error
	// RoomAliases returns the aliases of a room, oldest first (none for an
	// unknown room).
	RoomAliases(ctx context.Context, roomID string) ([]string, error)
	// ReplaceRoomInDirectory hands a room's directory entries to the room
	// that replaces it (a room upgrade), in one transaction: every alias
	// of oldRoomID names newRoomID, and when oldRoomID was published,
	// newRoomID is published and oldRoomID is not. It returns the aliases
	// moved, oldest first.
	ReplaceRoomInDirectory(ctx context.Context, oldRoomID, newRoomID string) ([]string, error)
	// SetRoomVisibility publishes (VisibilityPublic) or unpublishes
	// (VisibilityPrivate) a room; any other value is an error.
	SetRoomVisibility(ctx context.Context, roomID, visibility string) error
	// RoomVisibility returns VisibilityPrivate for a room never published.
	RoomVisibility(ctx context.Context, roomID string) (string, error)
	// PublicRooms returns every published room that is stored, by number
	// of joined members (highest first), then by room ID.
	PublicRooms(ctx context.Context) ([]PublicRoom, error)
	// SearchLocalUsers returns up to limit accounts (deactivated ones
	// left out) whose user ID (@localpart:serverName) or display name
	// contains term, ignoring case, and whose localpart is greater than
	// after, in ascending order of localpart; none when limit < 1.
	// Case folding of non-ASCII letters is the database's (SQLite folds
	// only ASCII).
	SearchLocalUsers(ctx context.Context, serverName, term, after string, limit int) ([]DirectoryUser, error)
}
