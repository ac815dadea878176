// Package federation is the server's identity on the federation: signing
// keys now; X-Matrix, keyring and senders come later.
package federation
