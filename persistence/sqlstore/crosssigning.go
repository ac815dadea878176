package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The cross-signing store (persistence.CrossSigningStore). Its changes
// take positions on the events' stream as device list changes.

// PutCrossSigningKeys implements persistence.CrossSigningStore.
func (s *Store) PutCrossSigningKeys(ctx context.Context, userID string, keys []persistence.CrossSigningKey) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := s.writeStream(ctx, func(tx *sql.Tx, w *streamWrite) error {
		for i := range keys {
			if err := s.crossSigningKeys.UpsertCrossSigningKey(ctx, tx, userID, &keys[i]); err != nil {
				return err
			}
		}
		var err error
		pos, err = w.take(func() (persistence.StreamPos, error) {
			return s.deviceListChanges.InsertDeviceListChange(ctx, tx, userID)
		})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("persistence.PutCrossSigningKeys: %w", err)
	}
	return pos, nil
}

// CrossSigningKeys implements persistence.CrossSigningStore.
func (s *Store) CrossSigningKeys(ctx context.Context, userID string) (map[string]persistence.CrossSigningKey, error) {
	out, err := s.crossSigningKeys.SelectCrossSigningKeys(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("persistence.CrossSigningKeys: %w", err)
	}
	return out, nil
}

// PutCrossSigningSignatures implements persistence.CrossSigningStore.
func (s *Store) PutCrossSigningSignatures(ctx context.Context, sigs []persistence.CrossSigningSignature) (map[string]persistence.StreamPos, error) {
	var positions map[string]persistence.StreamPos
	err := s.writeStream(ctx, func(tx *sql.Tx, w *streamWrite) error {
		positions = map[string]persistence.StreamPos{}
		var targets []string
		for i := range sigs {
			if err := s.crossSigningSignatures.UpsertCrossSigningSignature(ctx, tx, &sigs[i]); err != nil {
				return err
			}
			if _, ok := positions[sigs[i].TargetUserID]; !ok {
				positions[sigs[i].TargetUserID] = 0
				targets = append(targets, sigs[i].TargetUserID)
			}
		}
		for _, u := range targets {
			pos, err := w.take(func() (persistence.StreamPos, error) {
				return s.deviceListChanges.InsertDeviceListChange(ctx, tx, u)
			})
			if err != nil {
				return err
			}
			positions[u] = pos
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persistence.PutCrossSigningSignatures: %w", err)
	}
	return positions, nil
}

// CrossSigningSignatures implements persistence.CrossSigningStore.
func (s *Store) CrossSigningSignatures(ctx context.Context, targetUserID string) ([]persistence.CrossSigningSignature, error) {
	out, err := s.crossSigningSignatures.SelectCrossSigningSignatures(ctx, targetUserID)
	if err != nil {
		return nil, fmt.Errorf("persistence.CrossSigningSignatures: %w", err)
	}
	return out, nil
}
