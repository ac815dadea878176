package persistence

import (
	"context"
	"encoding/json"
)

// The per-user and per-room streams beside room events: account data and
// receipts. Their rows take positions from the same stream as events, so
// that one position (MaxStreamPos) bounds every read of a /sync and its
// token stays one number.

// AccountData is one entry of a user's account data: global when RoomID is
// "", else for that room.
type AccountData struct {
	RoomID    string
	Type      string
	Content   json.RawMessage // a JSON object
	StreamPos StreamPos
}

// Receipt is a user's receipt in a room: receipt type (m.read,
// m.read.private), thread ("" for an unthreaded receipt, else "main" or a
// thread root's event ID) and the event it marks.
type Receipt struct {
	RoomNID   RoomNID
	RoomID    string // filled by reads
	UserID    string
	Type      string
	ThreadID  string
	EventID   string
	TS        int64 // when it was sent, in Unix milliseconds
	StreamPos StreamPos
}

// UserStreams keeps account data and receipts.
type UserStreams interface {
	// PutAccountData stores (or replaces) an entry and returns its new
	// stream position.
	PutAccountData(ctx context.Context, userID string, data AccountData) (StreamPos, error)
	// GetAccountData returns ErrNotFound when the user has no such entry.
	GetAccountData(ctx context.Context, userID, roomID, dataType string) (json.RawMessage, error)
	// AccountDataBetween returns the user's entries (global and per room)
	// whose position is in (from, to], oldest first.
	AccountDataBetween(ctx context.Context, userID string, from, to StreamPos) ([]AccountData, error)
	// PutReceipt stores a receipt (RoomNID set, RoomID ignored), replacing
	// the user's previous one of the same type and thread in the room, and
	// returns its position.
	PutReceipt(ctx context.Context, r Receipt) (StreamPos, error)
	// LatestReadReceipt returns the event of the user's newest unthreaded
	// or main-thread read receipt (public or private) in the room;
	// ErrNotFound when there is none.
	LatestReadReceipt(ctx context.Context, room RoomNID, userID string) (string, error)
	// ReceiptsBetween returns the receipts of the rooms whose position is
	// in (from, to], oldest first.
	ReceiptsBetween(ctx context.Context, rooms []RoomNID, from, to StreamPos) ([]Receipt, error)
}
