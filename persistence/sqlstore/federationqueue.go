package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/soma-chat/soma/persistence"
)

// The FederationQueue. CommitEvents queues a room's PDUs (commit.go);
// the rest is here.

// QueueEDU implements persistence.FederationQueue.
func (s *Store) QueueEDU(ctx context.Context, destinations []string, eduType string, content []byte) error {
	if eduType == "" || !json.Valid(content) {
		return errors.New("persistence.QueueEDU: an EDU needs a type and JSON content")
	}
	if err := checkDestinations(destinations); err != nil {
		return fmt.Errorf("persistence.QueueEDU: %w", err)
	}
	if len(destinations) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return s.federationQueue.InsertQueuedEDUs(ctx, tx, destinations, eduType, content)
	})
	if err != nil {
		return fmt.Errorf("persistence.QueueEDU: %w", err)
	}
	return nil
}

// checkDestinations refuses an empty server name: a row queued for nobody
// would never be sent nor deleted.
func checkDestinations(destinations []string) error {
	if slices.Contains(destinations, "") {
		return errors.New("an empty destination")
	}
	return nil
}

// PendingFederation implements persistence.FederationQueue.
func (s *Store) PendingFederation(ctx context.Context, destination string, maxPDUs, maxEDUs int) ([]persistence.QueuedPDU, []persistence.QueuedEDU, error) {
	pdus, err := s.federationQueue.SelectQueuedPDUs(ctx, destination, maxPDUs)
	if err != nil {
		return nil, nil, fmt.Errorf("persistence.PendingFederation: %w", err)
	}
	edus, err := s.federationQueue.SelectQueuedEDUs(ctx, destination, maxEDUs)
	if err != nil {
		return nil, nil, fmt.Errorf("persistence.PendingFederation: %w", err)
	}
	return pdus, edus, nil
}

// DeleteFederationQueued implements persistence.FederationQueue.
func (s *Store) DeleteFederationQueued(ctx context.Context, destination string, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	if _, err := s.write(ctx, s.federationQueue.deleteSeqs, destination, s.dialect.formatNIDs(seqs)); err != nil {
		return fmt.Errorf("persistence.DeleteFederationQueued: %w", err)
	}
	return nil
}

// QueuedDestinations implements persistence.FederationQueue.
func (s *Store) QueuedDestinations(ctx context.Context) ([]string, error) {
	ds, err := s.federationQueue.SelectQueuedDestinations(ctx)
	if err != nil {
		return nil, fmt.Errorf("persistence.QueuedDestinations: %w", err)
	}
	return ds, nil
}
