// Package mediafiles keeps the media repository's files on disk, each
// named by the SHA-256 of its content, so that the same content uploaded
// twice is stored once and a file never changes once written.
package mediafiles

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrTooLarge is returned by Store.Put when the content exceeds the limit.
var ErrTooLarge = errors.New("mediafiles: content too large")

// Store is a directory of content-addressed files: <root>/ab/cd/abcd…
// (the hex SHA-256), and <root>/tmp for files being written.
type Store struct {
	root string
}

// Open creates the directory (and its tmp directory) when missing.
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("mediafiles.Open: %w", err)
	}
	return &Store{root: root}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Put reads r to its end, or until it has given more than limit bytes
// (ErrTooLarge, nothing stored), and stores the content. It returns the
// content's hex SHA-256 and size. The content is written to a temporary
// file, synced and renamed into place, so that the final path only ever
// holds a whole file; content already stored is kept as it is.
func (s *Store) Put(r io.Reader, limit int64) (sum string, size int64, err error) {
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("mediafiles.Put: %w", err)
	}
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, limit+1))
	if err != nil {
		return "", 0, fmt.Errorf("mediafiles.Put: %w", err)
	}
	if size > limit {
		return "", 0, ErrTooLarge
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("mediafiles.Put: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("mediafiles.Put: %w", err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	final := s.path(sum)
	if _, err := os.Stat(final); err == nil {
		return sum, size, nil // the same content is stored already
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return "", 0, fmt.Errorf("mediafiles.Put: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", 0, fmt.Errorf("mediafiles.Put: %w", err)
	}
	tmp = nil
	syncDir(filepath.Dir(final))
	return sum, size, nil
}

// Open opens the file with the given hex SHA-256; an error satisfying
// errors.Is(err, fs.ErrNotExist) when it is not stored.
func (s *Store) Open(sum string) (*os.File, error) {
	if !validSum(sum) {
		return nil, fmt.Errorf("mediafiles.Open: %q is not a SHA-256: %w", sum, os.ErrNotExist)
	}
	return os.Open(s.path(sum))
}

// path is where the content with the hex SHA-256 sum lives.
func (s *Store) path(sum string) string {
	return filepath.Join(s.root, sum[:2], sum[2:4], sum)
}

func validSum(sum string) bool {
	if len(sum) != 2*sha256.Size {
		return false
	}
	for _, c := range sum {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// syncDir makes a rename durable where the platform allows it; a failure
// only weakens durability, so it is not reported.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
