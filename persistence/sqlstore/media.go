package sqlstore

import (
	"context"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The media repository's metadata (persistence.MediaStore).

// InsertMedia implements persistence.MediaStore.
func (s *Store) InsertMedia(ctx context.Context, m persistence.Media) error {
	if m.ServerName == "" || m.MediaID == "" || m.SHA256 == "" {
		return fmt.Errorf("persistence.InsertMedia: server name, media ID and SHA-256 are required")
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("persistence.InsertMedia: %w", err)
	}
	defer unlock()
	created, err := s.media.InsertMedia(ctx, nil, &m)
	if err != nil {
		return fmt.Errorf("persistence.InsertMedia: %w", err)
	}
	if !created {
		return fmt.Errorf("persistence.InsertMedia: %w", persistence.ErrMediaExists)
	}
	return nil
}

// GetMedia implements persistence.MediaStore.
func (s *Store) GetMedia(ctx context.Context, serverName, mediaID string) (*persistence.Media, error) {
	m, err := s.media.SelectMedia(ctx, serverName, mediaID)
	if err != nil {
		return nil, fmt.Errorf("persistence.GetMedia: %w", notFoundIfNoRows(err))
	}
	return m, nil
}

// InsertThumbnail implements persistence.MediaStore.
func (s *Store) InsertThumbnail(ctx context.Context, t persistence.Thumbnail) error {
	if t.ServerName == "" || t.MediaID == "" || t.SHA256 == "" || t.Width < 1 || t.Height < 1 || t.Method == "" {
		return fmt.Errorf("persistence.InsertThumbnail: server name, media ID, SHA-256, dimensions and method are required")
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("persistence.InsertThumbnail: %w", err)
	}
	defer unlock()
	if err := s.thumbnails.InsertThumbnail(ctx, nil, &t); err != nil {
		return fmt.Errorf("persistence.InsertThumbnail: %w", err)
	}
	return nil
}

// Thumbnails implements persistence.MediaStore.
func (s *Store) Thumbnails(ctx context.Context, serverName, mediaID string) ([]persistence.Thumbnail, error) {
	out, err := s.thumbnails.SelectThumbnails(ctx, serverName, mediaID)
	if err != nil {
		return nil, fmt.Errorf("persistence.Thumbnails: %w", err)
	}
	return out, nil
}
