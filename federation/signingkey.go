package federation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
)

// SigningKey is the ed25519 key this server signs events and requests with.
// Private is crypto/ed25519's type, which golang.org/x/crypto/ed25519 (what
// gomatrixserverlib takes) aliases.
type SigningKey struct {
	KeyID   gomatrixserverlib.KeyID // "ed25519:<version>"
	Private ed25519.PrivateKey
}

// Public is the key's public half, as published under /_matrix/key/v2/server.
func (k *SigningKey) Public() ed25519.PublicKey {
	return k.Private.Public().(ed25519.PublicKey)
}

// Version is the part of the key ID after "ed25519:".
func (k *SigningKey) Version() string {
	return strings.TrimPrefix(string(k.KeyID), "ed25519:")
}

const keyVersionLength = 6

const alphanumeric = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// GenerateSigningKey makes a new key with ID "ed25519:" and six random
// alphanumeric characters.
func GenerateSigningKey() (*SigningKey, error) {
	version := make([]byte, keyVersionLength)
	for i := range version {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphanumeric))))
		if err != nil {
			return nil, fmt.Errorf("federation.GenerateSigningKey: %w", err)
		}
		version[i] = alphanumeric[n.Int64()]
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("federation.GenerateSigningKey: %w", err)
	}
	return &SigningKey{KeyID: gomatrixserverlib.KeyID("ed25519:" + string(version)), Private: priv}, nil
}

// ErrKeyExists is returned by WriteSigningKey when the file already exists.
var ErrKeyExists = errors.New("signing key file already exists")

// WriteSigningKey writes k in Synapse's signing key format, one line
// "ed25519 <version> <unpadded base64 of the 32-byte seed>", with mode 0600,
// creating the parent directory (0700). The file appears whole or not at
// all, and an existing file is never replaced (ErrKeyExists).
func WriteSigningKey(path string, k *SigningKey) error {
	version := k.Version()
	if !strings.HasPrefix(string(k.KeyID), "ed25519:") || !validKeyVersion(version) {
		return fmt.Errorf("federation.WriteSigningKey: invalid key ID %q", k.KeyID)
	}
	if len(k.Private) != ed25519.PrivateKeySize {
		return fmt.Errorf("federation.WriteSigningKey: private key has %d bytes, want %d", len(k.Private), ed25519.PrivateKeySize)
	}
	line := "ed25519 " + version + " " + base64.RawStdEncoding.EncodeToString(k.Private.Seed()) + "\n"

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("federation.WriteSigningKey: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("federation.WriteSigningKey: %s: %w", path, ErrKeyExists)
	}
	tmp, err := os.CreateTemp(dir, ".signing-key-*.tmp")
	if err != nil {
		return fmt.Errorf("federation.WriteSigningKey: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("federation.WriteSigningKey: %w", err)
	}
	if _, err := tmp.WriteString(line); err != nil {
		tmp.Close()
		return fmt.Errorf("federation.WriteSigningKey: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("federation.WriteSigningKey: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("federation.WriteSigningKey: %w", err)
	}
	// A hard link publishes the file atomically and fails if path exists,
	// even when another process created it since the check above.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("federation.WriteSigningKey: %s: %w", path, ErrKeyExists)
		}
		// A filesystem without hard links: rename, having checked above.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("federation.WriteSigningKey: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return nil
}

// LoadSigningKey reads a key written by WriteSigningKey or by Synapse
// ("ed25519 <version> <base64 seed>"; with several lines, the first is the
// signing key) or Dendrite (a "MATRIX PRIVATE KEY" PEM block with a Key-ID
// header).
func LoadSigningKey(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("federation.LoadSigningKey: %w", err)
	}
	var k *SigningKey
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		k, err = parsePEMKey(data)
	} else {
		k, err = parseSynapseKey(data)
	}
	if err != nil {
		return nil, fmt.Errorf("federation.LoadSigningKey: %s: %w", path, err)
	}
	return k, nil
}

// LoadOrGenerateSigningKey loads the key at path or, when there is no file,
// generates one and writes it there; generated says which happened.
func LoadOrGenerateSigningKey(path string) (*SigningKey, bool, error) {
	k, err := LoadSigningKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	k, err = GenerateSigningKey()
	if err != nil {
		return nil, false, err
	}
	if err := WriteSigningKey(path, k); err != nil {
		if errors.Is(err, ErrKeyExists) {
			// Another process won the race: use its key.
			k, err := LoadSigningKey(path)
			return k, false, err
		}
		return nil, false, err
	}
	return k, true, nil
}

func parseSynapseKey(data []byte) (*SigningKey, error) {
	var first *SigningKey
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, err := parseSynapseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if first == nil {
			first = k
		}
	}
	if first == nil {
		return nil, errors.New(`empty file, want "ed25519 <version> <base64 seed>"`)
	}
	return first, nil
}

func parseSynapseLine(line string) (*SigningKey, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return nil, fmt.Errorf(`want "ed25519 <version> <base64 seed>", got %d fields`, len(fields))
	}
	if fields[0] != "ed25519" {
		return nil, fmt.Errorf("unsupported algorithm %q, want ed25519", fields[0])
	}
	return newKey(fields[1], fields[2], base64Decode)
}

func parsePEMKey(data []byte) (*SigningKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New(`no "MATRIX PRIVATE KEY" PEM block`)
		}
		if block.Type != "MATRIX PRIVATE KEY" {
			continue
		}
		keyID := block.Headers["Key-ID"]
		version, ok := strings.CutPrefix(keyID, "ed25519:")
		if !ok {
			return nil, fmt.Errorf("PEM Key-ID %q does not start with \"ed25519:\"", keyID)
		}
		return newKey(version, string(block.Bytes), func(s string) ([]byte, error) { return []byte(s), nil })
	}
}

func newKey(version, seedText string, decode func(string) ([]byte, error)) (*SigningKey, error) {
	if !validKeyVersion(version) {
		return nil, fmt.Errorf("invalid key version %q (want letters, digits and _)", version)
	}
	seed, err := decode(seedText)
	if err != nil {
		return nil, fmt.Errorf("key is not base64: %v", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return &SigningKey{
		KeyID:   gomatrixserverlib.KeyID("ed25519:" + version),
		Private: ed25519.NewKeyFromSeed(seed),
	}, nil
}

// base64Decode accepts standard base64 with or without padding, as
// Synapse's decode_base64 does.
func base64Decode(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// validKeyVersion: the part of a key ID after "ed25519:" is [a-zA-Z0-9_]+.
func validKeyVersion(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
