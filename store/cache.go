package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// The build cache is a key/value store of small entries (a step's cache
// key to the layer and config it produced). Keys are any strings; each
// entry is one file named by the key's sha256, replaced atomically, so
// readers see an old or a new value, never a torn one. The builder owns
// the meaning of keys and values.

func (s *Store) cachePath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.path("cache", hex.EncodeToString(sum[:]))
}

// CacheGet returns the value stored for key, or ErrNotFound.
func (s *Store) CacheGet(key string) ([]byte, error) {
	data, err := os.ReadFile(s.cachePath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache entry: %w", err)
	}
	touch(s.cachePath(key)) // for prune's least-recently-used order
	return data, nil
}

// CachePut stores value for key, replacing any previous value.
func (s *Store) CachePut(key string, value []byte) error {
	if err := s.writeFileAtomic(s.cachePath(key), value); err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	return nil
}

// CacheHint stores value for key like CachePut, visible whole or not at
// all, but without waiting for the disk: for advisory data (what a step's
// key covered, for --explain-cache), which a crash may lose and nothing
// needs. A step writes several, so the fsyncs would cost each step.
func (s *Store) CacheHint(key string, value []byte) error {
	tmp, err := s.tempFile("hint")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(value); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.cachePath(key)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing cache entry: %w", err)
	}
	return nil
}

// CacheDelete removes the entry for key; a missing entry is not an error.
func (s *Store) CacheDelete(key string) error {
	err := os.Remove(s.cachePath(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting cache entry: %w", err)
	}
	return nil
}
