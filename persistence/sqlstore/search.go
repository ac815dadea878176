package sqlstore

import (
	"context"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// Full text search over the event_search projection (search_table.go).

var _ persistence.EventSearcher = (*Store)(nil)

// SearchEvents implements persistence.EventSearcher.
func (s *Store) SearchEvents(ctx context.Context, q persistence.SearchQuery) (*persistence.SearchResults, error) {
	res := &persistence.SearchResults{Words: persistence.SearchWords(q.Term)}
	if len(res.Words) == 0 || len(q.Rooms) == 0 {
		return res, nil
	}
	keys := q.Keys
	if keys == nil {
		keys = []string{persistence.SearchKeyBody, persistence.SearchKeyName, persistence.SearchKeyTopic}
	}
	keyIDs := make([]int64, 0, len(keys))
	for _, k := range keys {
		id, ok := searchKeyIDs[k]
		if !ok {
			return nil, fmt.Errorf("persistence.SearchEvents: unknown key %q", k)
		}
		keyIDs = append(keyIDs, id)
	}
	if len(keyIDs) == 0 {
		return res, nil
	}
	roomNIDs := make([]int64, len(q.Rooms))
	for i, r := range q.Rooms {
		roomNIDs[i] = int64(r)
	}
	match, err := s.search.matchArg(q.Term, res.Words)
	if err != nil {
		return nil, fmt.Errorf("persistence.SearchEvents: %w", err)
	}
	rooms, keyList := s.dialect.formatNIDs(roomNIDs), s.dialect.formatNIDs(keyIDs)
	if res.Count, err = s.search.CountSearchHits(ctx, match, rooms, keyList, q.To); err != nil {
		return nil, fmt.Errorf("persistence.SearchEvents: count: %w", err)
	}
	if q.Limit < 1 || res.Count == 0 {
		return res, nil
	}
	hits, err := s.search.SelectSearchHits(ctx, match, rooms, keyList, &q)
	if err != nil {
		return nil, fmt.Errorf("persistence.SearchEvents: %w", err)
	}
	nids := make([]int64, len(hits))
	for i, h := range hits {
		nids[i] = h.nid
	}
	evs, err := s.events.BulkSelectEventsByNID(ctx, nids)
	if err != nil {
		return nil, fmt.Errorf("persistence.SearchEvents: %w", err)
	}
	byNID := make(map[persistence.EventNID]persistence.StoredEvent, len(evs))
	for _, ev := range evs {
		byNID[ev.NID] = ev
	}
	res.Hits = make([]persistence.SearchHit, len(hits))
	for i, h := range hits {
		res.Hits[i] = persistence.SearchHit{Event: byNID[persistence.EventNID(h.nid)], Rank: h.rank}
	}
	return res, nil
}
