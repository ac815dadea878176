package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/rooms"
)

const verifyRoomsSummary = `Usage: somactl verify-rooms [-config soma.yaml] [-room !id:server] [-max-problems n]

Recomputes every room (or one) from its stored events, replayed in stream
order, and compares what is stored: each event's ID, content hash, columns,
references, depth and authorisation; the state recorded before each event;
the room head (snapshot, blocks, forward extremities, depth); the
current_state and memberships projections. Prints a line per room and a
summary; exits 0 when every room is consistent, 1 otherwise.

It only reads (it never claims a room), so it may run beside a live
server; a room written meanwhile is read again, but for a definite answer
verify a stopped server.`

// verifyRoomsPage is how many room IDs are listed at a time.
const verifyRoomsPage = 100

func verifyRoomsCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	cfgPath := fs.String("config", "", "the server's config `file` (default: built-in defaults and SOMA_* variables)")
	roomID := fs.String("room", "", "verify only this `room ID` (default: every room)")
	maxProblems := fs.Int("max-problems", 20, "print at most `n` problems per room; 0 prints them all")
	return func(ctx context.Context, e *env) error {
		if *maxProblems < 0 {
			return badUsage("-max-problems must not be negative")
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		store, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer store.Close()
		return verifyRooms(ctx, store, *roomID, *maxProblems, e.stdout)
	}
}

// roomLister pages through the stored rooms.
type roomLister interface {
	RoomIDs(ctx context.Context, after string, limit int) ([]string, error)
}

// verifyRooms verifies one room, or every room, printing a line for each
// and a summary; the error says how many rooms are inconsistent.
func verifyRooms(ctx context.Context, store persistence.Store, only string, maxProblems int, out io.Writer) error {
	var total, bad, problems int
	verify := func(id string) error {
		total++
		rep, err := rooms.VerifyRoom(ctx, store, id)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, persistence.ErrNotFound) && only != "" {
				return fmt.Errorf("room %s is not stored", id)
			}
			bad++
			fmt.Fprintf(out, "ERROR     %s: %v\n", id, err)
			return nil
		}
		if rep.Skipped != "" {
			fmt.Fprintf(out, "skipped   %s: %s\n", id, rep.Skipped)
			return nil
		}
		if rep.OK() {
			fmt.Fprintf(out, "ok        %s (%d events, %d state, depth %d)\n", id, rep.Events, rep.StateEvents, rep.Depth)
			return nil
		}
		bad++
		problems += len(rep.Problems)
		fmt.Fprintf(out, "PROBLEMS  %s (%d events): %d\n", id, rep.Events, len(rep.Problems))
		for i, p := range rep.Problems {
			if maxProblems > 0 && i == maxProblems {
				fmt.Fprintf(out, "  … and %d more (-max-problems 0 shows all)\n", len(rep.Problems)-i)
				break
			}
			if p.EventID != "" {
				fmt.Fprintf(out, "  %s %s: %s\n", p.Kind, p.EventID, p.Detail)
			} else {
				fmt.Fprintf(out, "  %s: %s\n", p.Kind, p.Detail)
			}
		}
		return nil
	}
	if only != "" {
		if err := verify(only); err != nil {
			return err
		}
	} else if err := forEachRoom(ctx, store, verify); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d rooms verified: %d consistent, %d with problems (%d problems)\n", total, total-bad, bad, problems)
	if bad > 0 {
		return fmt.Errorf("%d of %d rooms are not consistent with their events", bad, total)
	}
	return nil
}

func forEachRoom(ctx context.Context, store roomLister, fn func(roomID string) error) error {
	after := ""
	for {
		ids, err := store.RoomIDs(ctx, after, verifyRoomsPage)
		if err != nil {
			return fmt.Errorf("listing rooms: %w", err)
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if len(ids) < verifyRoomsPage {
			return nil
		}
		after = ids[len(ids)-1]
	}
}
