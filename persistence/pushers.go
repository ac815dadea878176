package persistence

import (
	"context"
	"encoding/json"
)

// Pusher is where a user's notifications are sent: an HTTP push gateway
// (kind "http"), identified per user by (AppID, Pushkey). It belongs to the
// device whose access token set it, and goes when that device goes.
type Pusher struct {
	UserID            string
	Localpart         string
	DeviceID          string
	Kind              string
	AppID             string
	Pushkey           string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              json.RawMessage // a JSON object (url, format, …)
	// PushkeyTS is when the pushkey was last set, in Unix milliseconds.
	PushkeyTS int64
}

// PusherStore keeps pushers.
type PusherStore interface {
	// SetPusher creates or replaces the user's pusher (UserID, AppID,
	// Pushkey). Unless keepOthers, every other user's pusher with the same
	// AppID and Pushkey is deleted in the same transaction. ErrNotFound when
	// the device (Localpart, DeviceID) does not exist (it was logged out).
	SetPusher(ctx context.Context, p Pusher, keepOthers bool) error
	// DeletePusher deletes the user's pusher; deleting none is not an error.
	DeletePusher(ctx context.Context, userID, appID, pushkey string) error
	// PushersOfUser returns the user's pushers ordered by app ID, pushkey.
	PushersOfUser(ctx context.Context, userID string) ([]Pusher, error)
	// PushersOfJoinedMembers returns the pushers of the room's joined
	// members, in one query whatever the room's size.
	PushersOfJoinedMembers(ctx context.Context, room RoomNID) ([]Pusher, error)
}
