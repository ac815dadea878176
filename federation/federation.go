// Package federation is this server on the Matrix federation: its identity
// (signing key, published key responses, TLS pair), the keyring that
// fetches, caches and checks other servers' keys, X-Matrix request signing
// (outbound client) and verification (inbound middleware), and the
// Server-Server API handlers built on them.
package federation
