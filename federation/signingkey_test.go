package federation

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
)

func TestGeneratedKeyIDIsShortAlphanumeric(t *testing.T) {
	k, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ed25519:[a-zA-Z0-9]{6}$`).MatchString(string(k.KeyID)) {
		t.Fatalf("key ID %q", k.KeyID)
	}
	if len(k.Private) != ed25519.PrivateKeySize {
		t.Fatalf("private key has %d bytes", len(k.Private))
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	k, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "new", "dir", "signing.key")
	if err := WriteSigningKey(path, k); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != k.KeyID || !got.Private.Equal(k.Private) {
		t.Fatalf("loaded %s, wrote %s", got.KeyID, k.KeyID)
	}
	// Synapse's format, byte for byte.
	data, _ := os.ReadFile(path)
	want := "ed25519 " + k.Version() + " " + base64.RawStdEncoding.EncodeToString(k.Private.Seed()) + "\n"
	if string(data) != want {
		t.Fatalf("file = %q, want %q", data, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key (temp file left behind?)", len(entries))
	}
}

func TestWrittenKeyIsPrivate(t *testing.T) {
	k, _ := GenerateSigningKey()
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "signing.key")
	if err := WriteSigningKey(path, k); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{path: 0o600, dir: 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", p, got, want)
		}
	}
}

func TestWriteRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, _ := GenerateSigningKey()
	err := WriteSigningKey(path, k)
	if !errors.Is(err, ErrKeyExists) {
		t.Fatalf("error = %v, want ErrKeyExists", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "precious" {
		t.Fatalf("file overwritten: %q", data)
	}
}

func TestLoadOrGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	k1, generated, err := LoadOrGenerateSigningKey(path)
	if err != nil || !generated {
		t.Fatalf("first call: generated=%v err=%v", generated, err)
	}
	k2, generated, err := LoadOrGenerateSigningKey(path)
	if err != nil || generated {
		t.Fatalf("second call: generated=%v err=%v", generated, err)
	}
	if k1.KeyID != k2.KeyID || !k1.Private.Equal(k2.Private) {
		t.Fatal("second call returned a different key")
	}
}

func TestLoadOrGenerateDoesNotReplaceABrokenKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	os.WriteFile(path, []byte("garbage\n"), 0o600)
	if _, _, err := LoadOrGenerateSigningKey(path); err == nil {
		t.Fatal("a malformed key file was accepted or replaced")
	}
	if data, _ := os.ReadFile(path); string(data) != "garbage\n" {
		t.Fatalf("file changed: %q", data)
	}
}

func TestLoadMalformedFiles(t *testing.T) {
	seed := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	for _, tc := range []struct{ name, content, want string }{
		{"empty", "", "empty file"},
		{"blank lines", "\n\n", "empty file"},
		{"two fields", "ed25519 abc\n", "got 2 fields"},
		{"four fields", "ed25519 abc " + seed + " extra\n", "got 4 fields"},
		{"other algorithm", "curve25519 abc " + seed + "\n", `unsupported algorithm "curve25519"`},
		{"bad version", "ed25519 a-b " + seed + "\n", `invalid key version "a-b"`},
		{"not base64", "ed25519 abc !!!!\n", "not base64"},
		{"short seed", "ed25519 abc " + seed[:20] + "\n", "want 32"},
		{"bad second line", "ed25519 abc " + seed + "\nnonsense\n", "line 2:"},
		{"pem without key block", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", `no "MATRIX PRIVATE KEY" PEM block`},
		{"pem without key id", string(pem.EncodeToMemory(&pem.Block{Type: "MATRIX PRIVATE KEY", Bytes: make([]byte, 32)})), `Key-ID ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signing.key")
			os.WriteFile(path, []byte(tc.content), 0o600)
			_, err := LoadSigningKey(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
			if strings.Contains(err.Error(), seed) {
				t.Fatalf("error %q leaks the key", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := LoadSigningKey(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error = %v, want ErrNotExist", err)
	}
}

// TestLoadSynapseAndDendriteFiles: keys migrate from either server. Synapse
// may pad its base64 and keep several keys (the first signs).
func TestLoadSynapseAndDendriteFiles(t *testing.T) {
	seed := bytes.Repeat([]byte{42}, 32)
	want := ed25519.NewKeyFromSeed(seed)
	for name, content := range map[string]string{
		"synapse":        "ed25519 a_AbCd " + base64.RawStdEncoding.EncodeToString(seed) + "\n",
		"synapse padded": "ed25519 a_AbCd " + base64.StdEncoding.EncodeToString(seed),
		"synapse two":    "ed25519 a_AbCd " + base64.RawStdEncoding.EncodeToString(seed) + "\ned25519 old " + base64.RawStdEncoding.EncodeToString(make([]byte, 32)) + "\n",
		"dendrite pem": string(pem.EncodeToMemory(&pem.Block{
			Type: "MATRIX PRIVATE KEY", Headers: map[string]string{"Key-ID": "ed25519:a_AbCd"}, Bytes: seed,
		})),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			os.WriteFile(path, []byte(content), 0o600)
			k, err := LoadSigningKey(path)
			if err != nil {
				t.Fatal(err)
			}
			if k.KeyID != "ed25519:a_AbCd" || !k.Private.Equal(want) {
				t.Fatalf("loaded %s with a different key", k.KeyID)
			}
		})
	}
}

// TestKeySignsWithGomatrixserverlib: the key's type is what
// gomatrixserverlib's signing functions take.
func TestKeySignsWithGomatrixserverlib(t *testing.T) {
	k, _ := GenerateSigningKey()
	signed, err := gomatrixserverlib.SignJSON("example.org", k.KeyID, k.Private, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := gomatrixserverlib.VerifyJSON("example.org", k.KeyID, k.Public(), signed); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}
