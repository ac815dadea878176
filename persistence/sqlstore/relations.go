package sqlstore

import (
	"context"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The relations projection and events by timestamp (relations_table.go).

var _ persistence.RelationsReader = (*Store)(nil)

// Relations implements persistence.RelationsReader.
func (s *Store) Relations(ctx context.Context, room persistence.RoomNID, parentID, relType, eventType string,
	from, to persistence.StreamPos, limit int, forward bool,
) ([]persistence.StoredEvent, error) {
	if limit < 1 || from >= to {
		return nil, nil
	}
	evs, err := s.relations.SelectRelations(ctx, room, parentID, relType, eventType, from, to, limit, forward)
	if err != nil {
		return nil, fmt.Errorf("persistence.Relations: %w", err)
	}
	return evs, nil
}

// Threads implements persistence.RelationsReader.
func (s *Store) Threads(ctx context.Context, room persistence.RoomNID, participant string, before, to persistence.StreamPos, limit int) ([]persistence.Thread, error) {
	if limit < 1 {
		return nil, nil
	}
	ths, err := s.relations.SelectThreads(ctx, room, participant, before, to, limit)
	if err != nil {
		return nil, fmt.Errorf("persistence.Threads: %w", err)
	}
	return ths, nil
}

// BundledRelations implements persistence.RelationsReader.
func (s *Store) BundledRelations(ctx context.Context, parents []persistence.EventNID, participant string, to persistence.StreamPos) ([]persistence.RelatedChild, []persistence.ThreadSummary, error) {
	if len(parents) == 0 {
		return nil, nil, nil
	}
	nids := make([]int64, len(parents))
	for i, p := range parents {
		nids[i] = int64(p)
	}
	children, err := s.relations.SelectBundledChildren(ctx, nids, to, persistence.MaxBundledChildren)
	if err != nil {
		return nil, nil, fmt.Errorf("persistence.BundledRelations: children: %w", err)
	}
	threads, err := s.relations.SelectThreadSummaries(ctx, nids, to, participant)
	if err != nil {
		return nil, nil, fmt.Errorf("persistence.BundledRelations: threads: %w", err)
	}
	return children, threads, nil
}

// EventsNearTimestamp implements persistence.RelationsReader.
func (s *Store) EventsNearTimestamp(ctx context.Context, room persistence.RoomNID, ts int64, forward bool, to persistence.StreamPos, limit int) ([]persistence.StoredEvent, error) {
	if limit < 1 {
		return nil, nil
	}
	evs, err := s.relations.SelectEventsNearTimestamp(ctx, room, ts, forward, to, limit)
	if err != nil {
		return nil, fmt.Errorf("persistence.EventsNearTimestamp: %w", err)
	}
	return evs, nil
}
