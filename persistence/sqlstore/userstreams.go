package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// The account data and receipts streams (persistence.UserStreams). Their
// rows take positions from the events' stream, so the stream tracker
// learns of each one as it does of events.

// PutAccountData implements persistence.UserStreams.
func (s *Store) PutAccountData(ctx context.Context, userID string, d persistence.AccountData) (persistence.StreamPos, error) {
	if !json.Valid(d.Content) {
		return 0, fmt.Errorf("persistence.PutAccountData: content is not JSON")
	}
	pos, err := s.writeStreamRow(ctx, func(tx *sql.Tx) (persistence.StreamPos, error) {
		return s.accountData.UpsertAccountData(ctx, tx, userID, &d)
	})
	if err != nil {
		return 0, fmt.Errorf("persistence.PutAccountData: %w", err)
	}
	return pos, nil
}

// GetAccountData implements persistence.UserStreams.
func (s *Store) GetAccountData(ctx context.Context, userID, roomID, dataType string) (json.RawMessage, error) {
	c, err := s.accountData.SelectAccountData(ctx, userID, roomID, dataType)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, persistence.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("persistence.GetAccountData: %w", err)
	}
	return c, nil
}

// AccountDataBetween implements persistence.UserStreams.
func (s *Store) AccountDataBetween(ctx context.Context, userID string, from, to persistence.StreamPos) ([]persistence.AccountData, error) {
	out, err := s.accountData.SelectAccountDataBetween(ctx, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("persistence.AccountDataBetween: %w", err)
	}
	return out, nil
}

// PutReceipt implements persistence.UserStreams.
func (s *Store) PutReceipt(ctx context.Context, r persistence.Receipt) (persistence.StreamPos, error) {
	pos, err := s.writeStreamRow(ctx, func(tx *sql.Tx) (persistence.StreamPos, error) {
		return s.receipts.UpsertReceipt(ctx, tx, &r)
	})
	if err != nil {
		return 0, fmt.Errorf("persistence.PutReceipt: %w", err)
	}
	return pos, nil
}

// LatestReadReceipt implements persistence.UserStreams.
func (s *Store) LatestReadReceipt(ctx context.Context, room persistence.RoomNID, userID string) (string, error) {
	var id string
	if err := s.receipts.selectRead.QueryRowContext(ctx, room, userID).Scan(&id); err != nil {
		return "", fmt.Errorf("persistence.LatestReadReceipt: %w", notFoundIfNoRows(err))
	}
	return id, nil
}

// ReceiptsBetween implements persistence.UserStreams.
func (s *Store) ReceiptsBetween(ctx context.Context, rooms []persistence.RoomNID, from, to persistence.StreamPos) ([]persistence.Receipt, error) {
	if len(rooms) == 0 {
		return nil, nil
	}
	out, err := s.receipts.SelectReceiptsBetween(ctx, rooms, from, to)
	if err != nil {
		return nil, fmt.Errorf("persistence.ReceiptsBetween: %w", err)
	}
	return out, nil
}

// writeStreamRow runs one statement that takes a stream position, in its
// own transaction (see writeStream).
func (s *Store) writeStreamRow(ctx context.Context, insert func(tx *sql.Tx) (persistence.StreamPos, error)) (persistence.StreamPos, error) {
	var pos persistence.StreamPos
	err := s.writeStream(ctx, func(tx *sql.Tx, w *streamWrite) error {
		var err error
		pos, err = w.take(func() (persistence.StreamPos, error) { return insert(tx) })
		return err
	})
	return pos, err
}

// streamWrite is a transaction whose statements take stream positions.
type streamWrite struct {
	s         *Store
	positions []persistence.StreamPos
}

// take runs one statement that takes a position, keeping the stream
// tracker told: the position is pending from the statement's return until
// the transaction ends.
func (w *streamWrite) take(insert func() (persistence.StreamPos, error)) (persistence.StreamPos, error) {
	alloc := w.s.streams.beginAlloc()
	p, err := insert()
	w.s.streams.endAlloc(alloc, p, err == nil)
	if err == nil {
		w.positions = append(w.positions, p)
	}
	return p, err
}

// writeStream runs fn in a write transaction; the positions its takes
// allocated become readable when it commits, and never otherwise.
func (s *Store) writeStream(ctx context.Context, fn func(tx *sql.Tx, w *streamWrite) error) error {
	w := &streamWrite{s: s}
	committed := false
	defer func() { s.streams.finish(w.positions, committed) }()
	err := s.writeTx(ctx, func(tx *sql.Tx) error { return fn(tx, w) })
	committed = err == nil
	return err
}
