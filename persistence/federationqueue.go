package persistence

import "context"

// Limits of one federation transaction (the spec's PUT
// /_matrix/federation/v1/send/{txnId}).
const (
	MaxTransactionPDUs = 50
	MaxTransactionEDUs = 100
)

// QueuedPDU is an event waiting to be sent to a remote server.
type QueuedPDU struct {
	Seq     int64
	EventID string
	// JSON is the event exactly as stored (signed; hashes need the bytes).
	JSON []byte
}

// QueuedEDU is an ephemeral event waiting to be sent to a remote server.
type QueuedEDU struct {
	Seq     int64
	Type    string
	Content []byte // a JSON object
}

// FederationQueue is the outbound federation queue: for each remote server
// (destination), the PDUs and EDUs it has yet to receive. A room's commit
// queues its events for NewEvent.Destinations in the same transaction
// (CommitEvents), so that an event a client was told is sent reaches the
// remote servers even if the process dies right after; the destination's
// sender reads, sends and then deletes them.
type FederationQueue interface {
	// QueueEDU queues one EDU for each of the destinations, in one
	// transaction; queueing for none is not an error.
	QueueEDU(ctx context.Context, destinations []string, eduType string, content []byte) error
	// PendingFederation returns the oldest (by Seq) up to maxPDUs PDUs and
	// up to maxEDUs EDUs queued for the destination.
	PendingFederation(ctx context.Context, destination string, maxPDUs, maxEDUs int) (pdus []QueuedPDU, edus []QueuedEDU, err error)
	// DeleteFederationQueued deletes the destination's rows with these
	// seqs; seqs that are not queued (any more) are not an error.
	DeleteFederationQueued(ctx context.Context, destination string, seqs []int64) error
	// QueuedDestinations returns the destinations that have rows queued,
	// sorted.
	QueuedDestinations(ctx context.Context) ([]string, error)
}

// JoinedServers says which servers have joined members where: the
// destinations of EDUs (typing and receipts go to a room's servers;
// presence and device list updates to every server sharing a room with
// the user). A server name is what follows a user ID's first colon.
type JoinedServers interface {
	// JoinedServersOfRoom returns the distinct servers of the room's
	// joined members, sorted; none for an unknown room.
	JoinedServersOfRoom(ctx context.Context, roomID string) ([]string, error)
	// ServersSharingRoomsWith returns the distinct servers of the joined
	// members of the rooms userID is joined to (the user's own included),
	// sorted; none when the user is joined to no room.
	ServersSharingRoomsWith(ctx context.Context, userID string) ([]string, error)
}
