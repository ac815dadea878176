package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// Remote servers' signing keys (persistence.ServerKeyStore).

// StoreServerKeys implements persistence.ServerKeyStore.
func (s *Store) StoreServerKeys(ctx context.Context, keys []persistence.ServerKey) error {
	for _, k := range keys {
		if k.ServerName == "" || k.KeyID == "" || len(k.PublicKey) == 0 {
			return fmt.Errorf("persistence.StoreServerKeys: server name, key ID and public key are required")
		}
	}
	if len(keys) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for i := range keys {
			if err := s.serverKeys.UpsertServerKey(ctx, tx, &keys[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence.StoreServerKeys: %w", err)
	}
	return nil
}

// ServerKeys implements persistence.ServerKeyStore. The keyring asks for
// one or two keys at a time, so one indexed lookup each is enough.
func (s *Store) ServerKeys(ctx context.Context, ids []persistence.ServerKeyID) ([]persistence.ServerKey, error) {
	var out []persistence.ServerKey
	for _, id := range ids {
		k, err := s.serverKeys.SelectServerKey(ctx, id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("persistence.ServerKeys: %w", err)
		}
		out = append(out, *k)
	}
	return out, nil
}

// StoreServerKeyResponse implements persistence.ServerKeyStore.
func (s *Store) StoreServerKeyResponse(ctx context.Context, r persistence.ServerKeyResponse) error {
	if r.ServerName == "" || len(r.JSON) == 0 {
		return fmt.Errorf("persistence.StoreServerKeyResponse: server name and JSON are required")
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("persistence.StoreServerKeyResponse: %w", err)
	}
	defer unlock()
	if err := s.serverKeyResponses.UpsertServerKeyResponse(ctx, nil, &r); err != nil {
		return fmt.Errorf("persistence.StoreServerKeyResponse: %w", err)
	}
	return nil
}

// ServerKeyResponse implements persistence.ServerKeyStore.
func (s *Store) ServerKeyResponse(ctx context.Context, serverName string) (*persistence.ServerKeyResponse, error) {
	r, err := s.serverKeyResponses.SelectServerKeyResponse(ctx, serverName)
	if err != nil {
		return nil, fmt.Errorf("persistence.ServerKeyResponse: %w", notFoundIfNoRows(err))
	}
	return r, nil
}
