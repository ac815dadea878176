package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The PusherStore.

// SetPusher implements persistence.PusherStore.
func (s *Store) SetPusher(ctx context.Context, p persistence.Pusher, keepOthers bool) error {
	if p.UserID == "" || p.AppID == "" || p.Pushkey == "" || !json.Valid(p.Data) {
		return fmt.Errorf("persistence.SetPusher: user, app ID, pushkey and JSON data are required")
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		written, err := s.pushers.UpsertPusher(ctx, tx, &p)
		if err != nil {
			return err
		}
		if !written {
			return persistence.ErrNotFound
		}
		if keepOthers {
			return nil
		}
		return s.pushers.DeleteOtherUsersPushers(ctx, tx, p.AppID, p.Pushkey, p.UserID)
	})
	if err != nil {
		return fmt.Errorf("persistence.SetPusher: %w", err)
	}
	return nil
}

// DeletePusher implements persistence.PusherStore.
func (s *Store) DeletePusher(ctx context.Context, userID, appID, pushkey string) error {
	if _, err := s.write(ctx, s.pushers.deleteOne, userID, appID, pushkey); err != nil {
		return fmt.Errorf("persistence.DeletePusher: %w", err)
	}
	return nil
}

// PushersOfUser implements persistence.PusherStore.
func (s *Store) PushersOfUser(ctx context.Context, userID string) ([]persistence.Pusher, error) {
	ps, err := s.pushers.SelectPushers(ctx, s.pushers.selectOfUser, userID)
	if err != nil {
		return nil, fmt.Errorf("persistence.PushersOfUser: %w", err)
	}
	return ps, nil
}

// PushersOfJoinedMembers implements persistence.PusherStore.
func (s *Store) PushersOfJoinedMembers(ctx context.Context, room persistence.RoomNID) ([]persistence.Pusher, error) {
	ps, err := s.pushers.SelectPushers(ctx, s.pushers.selectOfJoinedMembers, room)
	if err != nil {
		return nil, fmt.Errorf("persistence.PushersOfJoinedMembers: %w", err)
	}
	return ps, nil
}
