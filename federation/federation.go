// Package federation is this server on the Matrix federation: its identity
// (signing key, published key responses, TLS pair), the keyring that
// fetches, caches and checks other servers' keys, X-Matrix request signing
// (outbound client) and verification (inbound middleware), the
// Server-Server API handlers built on them (transactions whose events go to
// their rooms' actors, joins, invites and leaves, reads of a room's events,
// keys, directory, EDUs), the outbound membership handshakes, and the
// per-destination senders of the persistent outbound queue.
//
// Rooms decide; this package checks what crosses the wire (signatures,
// origins, shapes, server ACLs) and fetches what a room lacks.
package federation
