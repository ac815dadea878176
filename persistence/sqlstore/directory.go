package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The room and user directories (persistence.Directory).

// InsertRoomAlias implements persistence.Directory.
func (s *Store) InsertRoomAlias(ctx context.Context, a persistence.RoomAlias) error {
	n, err := s.write(ctx, s.roomAliases.insertRoomAlias, a.Alias, a.RoomID, a.Creator, a.CreatedTS)
	if err != nil {
		return fmt.Errorf("persistence.InsertRoomAlias: %w", err)
	}
	if n == 0 {
		return persistence.ErrAliasExists
	}
	return nil
}

// RoomAlias implements persistence.Directory.
func (s *Store) RoomAlias(ctx context.Context, alias string) (*persistence.RoomAlias, error) {
	a, err := s.roomAliases.SelectRoomAlias(ctx, alias)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, persistence.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("persistence.RoomAlias: %w", err)
	}
	return a, nil
}

// DeleteRoomAlias implements persistence.Directory.
func (s *Store) DeleteRoomAlias(ctx context.Context, alias string) error {
	n, err := s.write(ctx, s.roomAliases.deleteRoomAlias, alias)
	if err != nil {
		return fmt.Errorf("persistence.DeleteRoomAlias: %w", err)
	}
	if n == 0 {
		return persistence.ErrNotFound
	}
	return nil
}

// RoomAliases implements persistence.Directory.
func (s *Store) RoomAliases(ctx context.Context, roomID string) ([]string, error) {
	out, err := s.roomAliases.SelectRoomAliasesByRoom(ctx, nil, roomID)
	if err != nil {
		return nil, fmt.Errorf("persistence.RoomAliases: %w", err)
	}
	return out, nil
}

// ReplaceRoomInDirectory implements persistence.Directory.
func (s *Store) ReplaceRoomInDirectory(ctx context.Context, oldRoomID, newRoomID string) ([]string, error) {
	var moved []string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		if moved, err = s.roomAliases.SelectRoomAliasesByRoom(ctx, tx, oldRoomID); err != nil {
			return err
		}
		if err := s.roomAliases.UpdateRoomAliasesRoom(ctx, tx, oldRoomID, newRoomID); err != nil {
			return err
		}
		v, err := s.roomVisibility.SelectRoomVisibility(ctx, tx, oldRoomID)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && v != persistence.VisibilityPublic) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.roomVisibility.UpsertRoomVisibility(ctx, tx, newRoomID, persistence.VisibilityPublic); err != nil {
			return err
		}
		return s.roomVisibility.UpsertRoomVisibility(ctx, tx, oldRoomID, persistence.VisibilityPrivate)
	})
	if err != nil {
		return nil, fmt.Errorf("persistence.ReplaceRoomInDirectory: %w", err)
	}
	return moved, nil
}

// SetRoomVisibility implements persistence.Directory.
func (s *Store) SetRoomVisibility(ctx context.Context, roomID, visibility string) error {
	if visibility != persistence.VisibilityPublic && visibility != persistence.VisibilityPrivate {
		return fmt.Errorf("persistence.SetRoomVisibility: invalid visibility %q", visibility)
	}
	if _, err := s.write(ctx, s.roomVisibility.upsertRoomVisibility, roomID, visibility); err != nil {
		return fmt.Errorf("persistence.SetRoomVisibility: %w", err)
	}
	return nil
}

// RoomVisibility implements persistence.Directory.
func (s *Store) RoomVisibility(ctx context.Context, roomID string) (string, error) {
	v, err := s.roomVisibility.SelectRoomVisibility(ctx, nil, roomID)
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.VisibilityPrivate, nil
	}
	if err != nil {
		return "", fmt.Errorf("persistence.RoomVisibility: %w", err)
	}
	return v, nil
}

// PublicRooms implements persistence.Directory.
func (s *Store) PublicRooms(ctx context.Context) ([]persistence.PublicRoom, error) {
	out, err := s.roomVisibility.SelectPublicRooms(ctx)
	if err != nil {
		return nil, fmt.Errorf("persistence.PublicRooms: %w", err)
	}
	return out, nil
}

// SearchLocalUsers implements persistence.Directory.
func (s *Store) SearchLocalUsers(ctx context.Context, serverName, term, after string, limit int) ([]persistence.DirectoryUser, error) {
	if limit < 1 {
		return nil, nil
	}
	out, err := s.userDirectory.SearchLocalUsers(ctx, serverName, term, after, limit)
	if err != nil {
		return nil, fmt.Errorf("persistence.SearchLocalUsers: %w", err)
	}
	return out, nil
}
