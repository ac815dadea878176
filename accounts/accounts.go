// Package accounts holds the rules for local user accounts: localpart rules
// and password hashing, shared by registration, login and somactl.
package accounts

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// BcryptCost is the work factor of new password hashes.
const BcryptCost = 12

// bcryptMaxBytes is the longest input bcrypt reads; x/crypto refuses longer.
const bcryptMaxBytes = 72

// HashPassword returns a bcrypt hash of p. Any length is accepted (policy on
// empty or overlong passwords belongs to the caller): passwords up to 72
// bytes are hashed as they are, so hashes made by Synapse or Dendrite for
// them check; longer ones are first reduced to the base64 of their SHA-256
// so that every byte counts instead of bcrypt's silent truncation.
func HashPassword(p string) (string, error) { return hashPassword(p, BcryptCost) }

func hashPassword(p string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword(bcryptInput(p), cost)
	if err != nil {
		return "", fmt.Errorf("accounts.HashPassword: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether p is the password hash was made from. It
// takes the same time whether or not they match.
func CheckPassword(hash, p string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), bcryptInput(p)) == nil
}

func bcryptInput(p string) []byte {
	if len(p) <= bcryptMaxBytes {
		return []byte(p)
	}
	sum := sha256.Sum256([]byte(p))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

// ErrInvalidLocalpart is wrapped by ValidateLocalpart's errors, whose text
// says what is wrong in words fit for a client.
var ErrInvalidLocalpart = errors.New("invalid localpart")

// MaxUserIDLength is the longest a user ID may be, in bytes, sigil and
// server name included.
const MaxUserIDLength = 255

// ValidateLocalpart checks a localpart for a new account of serverName
// against the Matrix user ID grammar: one or more of a-z 0-9 . _ = - / +,
// and "@localpart:serverName" at most 255 bytes. It does not lower-case:
// callers that accept mixed case fold it first.
func ValidateLocalpart(localpart, serverName string) error {
	if localpart == "" {
		return fmt.Errorf("%w: must not be empty", ErrInvalidLocalpart)
	}
	for _, r := range localpart {
		if !isLocalpartChar(r) {
			return fmt.Errorf("%w %q: %q is not allowed (use a-z, 0-9 and . _ = - / +)", ErrInvalidLocalpart, localpart, r)
		}
	}
	if n := len("@") + len(localpart) + len(":") + len(serverName); n > MaxUserIDLength {
		return fmt.Errorf("%w %q: the user ID would be %d bytes, more than %d", ErrInvalidLocalpart, localpart, n, MaxUserIDLength)
	}
	return nil
}

func isLocalpartChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return true
	}
	switch r {
	case '.', '_', '=', '-', '/', '+':
		return true
	}
	return false
}
