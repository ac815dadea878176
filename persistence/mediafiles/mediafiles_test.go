package mediafiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPutStoresContentByItsSHA256(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("hello, media")
	want := sha256.Sum256(content)
	sum, size, err := s.Put(bytes.NewReader(content), 100)
	if err != nil || sum != hex.EncodeToString(want[:]) || size != int64(len(content)) {
		t.Fatalf("Put = %q, %d, %v", sum, size, err)
	}
	f, err := s.Open(sum)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, content) {
		t.Fatalf("read back %q", got)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), sum[:2], sum[2:4], sum)); err != nil {
		t.Fatalf("file not at its content address: %v", err)
	}

	// The same content again is the same file; no temporary file is left.
	again, _, err := s.Put(bytes.NewReader(content), 100)
	if err != nil || again != sum {
		t.Fatalf("second Put = %q, %v", again, err)
	}
	if left, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestPutRefusesContentOverTheLimit(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(strings.NewReader("12345"), 5); err != nil {
		t.Fatalf("content at the limit: %v", err)
	}
	_, _, err = s.Put(strings.NewReader("123456"), 5)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("content over the limit: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestOpenRefusesWhatIsNotASum(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, sum := range []string{"", "../../etc/passwd", strings.Repeat("A", 64), strings.Repeat("0", 64)} {
		if _, err := s.Open(sum); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want not exist", sum, err)
		}
	}
}
