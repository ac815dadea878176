package persistence

import "context"

// Thread is a thread root with what its replies (m.thread relations) add
// up to, as of the reader's bound.
type Thread struct {
	Root StoredEvent
	// Latest is the stream position of the latest reply, LatestEventID its
	// event, Count the number of replies.
	Latest        StreamPos
	LatestEventID string
	Count         int
}

// MaxBundledChildren bounds the children one BundledRelations call reads,
// so that a page of events with thousands of references stays cheap.
const MaxBundledChildren = 1000

// RelatedChild is an event that relates to Parent (an event NID) through
// an m.replace or m.reference relation.
type RelatedChild struct {
	Parent  EventNID
	RelType string
	Event   StoredEvent
}

// ThreadSummary is what the replies to one thread root add up to.
type ThreadSummary struct {
	Root   EventNID
	Latest StoredEvent
	Count  int
	// Participated is true when the asking user sent one of the replies.
	Participated bool
}

// RelationsReader reads the relations projection (which event relates to
// which through content["m.relates_to"], written when events are
// committed) and events by timestamp. Events that are redacted have lost
// their relation and are left out.
type RelationsReader interface {
	// Relations returns up to limit events of the room that relate to
	// parentID with from < pos <= to, oldest first when forward, newest
	// first otherwise; relType and eventType, when not "", narrow them.
	// None when limit < 1.
	Relations(ctx context.Context, room RoomNID, parentID, relType, eventType string, from, to StreamPos, limit int, forward bool) ([]StoredEvent, error)
	// Threads returns up to limit thread roots stored in the room, the most
	// recently replied to first, counting only replies at pos <= to and
	// keeping threads whose latest such reply is at pos < before. With a
	// participant, only threads the participant started or replied to.
	Threads(ctx context.Context, room RoomNID, participant string, before, to StreamPos, limit int) ([]Thread, error)
	// BundledRelations returns what bundled aggregations are made of for
	// the parents (events of any rooms): their m.replace and m.reference
	// children, oldest first, and the summaries of the threads they root,
	// counting replies at pos <= to that are not redacted; participant is
	// the user asking. At most MaxBundledChildren children are returned.
	BundledRelations(ctx context.Context, parents []EventNID, participant string, to StreamPos) ([]RelatedChild, []ThreadSummary, error)
	// EventsNearTimestamp returns up to limit events of the room's
	// timeline (no outliers) at pos <= to: forward, those sent at or after
	// ts, earliest first; otherwise those sent at or before ts, latest
	// first.
	EventsNearTimestamp(ctx context.Context, room RoomNID, ts int64, forward bool, to StreamPos, limit int) ([]StoredEvent, error)
}
