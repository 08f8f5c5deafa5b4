package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Sharing is how builds share a cache mount (RUN --mount=type=cache,sharing=).
type Sharing int

const (
	// Shared lets concurrent builds use the directory at once.
	Shared Sharing = iota
	// Locked makes a build wait until no other uses it.
	Locked
	// Private gives a build a fresh directory of its own while another
	// holds the shared one.
	Private
)

// CacheMount returns the directory of the cache mount id, kept in
// cache-mounts/ across builds and created by init (which gives it its
// owner and mode) when new; release drops the lock taken for Locked and
// Private once the step is over.
func (s *Store) CacheMount(ctx context.Context, id string, sharing Sharing, init func(dir string) error) (dir string, release func(), err error) {
	sum := sha256.Sum256([]byte(id))
	dir = s.path("cache-mounts", hex.EncodeToString(sum[:]))
	// Used now, for prune's least-recently-used order (beside it: the
	// directory's own times are the step's to see).
	touch(s.path("locks", "cache-mount-"+hex.EncodeToString(sum[:])+".used"))
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := s.createCacheDir(dir, init); err != nil {
			return "", nil, fmt.Errorf("creating cache mount %s: %w", id, err)
		}
	}
	var lock *fileLock
	switch sharing {
	case Locked:
		lock, err = lockDir(ctx, dir, true)
	case Private:
		if lock, err = lockDir(ctx, dir, false); errors.Is(err, errLocked) {
			dir, err = s.privateCacheDir(init)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("cache mount %s: %w", id, err)
	}
	return dir, func() {
		if lock != nil {
			lock.unlock()
		}
	}, nil
}

// CacheMountPath is the directory of the cache mount id, whether it exists.
func (s *Store) CacheMountPath(id string) (string, error) {
	sum := sha256.Sum256([]byte(id))
	return s.path("cache-mounts", hex.EncodeToString(sum[:])), nil
}

// privateCacheDir is an empty cache directory for one step alone, in this
// Store's temporary directory.
func (s *Store) privateCacheDir(init func(string) error) (string, error) {
	dir, err := os.MkdirTemp(s.session, "cache-")
	if err != nil {
		return "", err
	}
	return dir, init(dir)
}

// createCacheDir makes the directory under a temporary name and renames it
// into place, so a concurrent build sees it complete or not at all.
func (s *Store) createCacheDir(dir string, init func(string) error) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
	if err != nil {
		return err
	}
	if err := init(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Remove(tmp)
		if _, serr := os.Stat(dir); serr == nil {
			return nil
		}
		return err
	}
	return nil
}

// lockDir flocks the directory dir; with wait it retries until it gets the
// lock or ctx ends (a blocking flock could not be interrupted), without it
// a busy lock is errLocked.
func lockDir(ctx context.Context, dir string, wait bool) (*fileLock, error) {
	for {
		l, err := lockDirFile(dir, true, false)
		if !errors.Is(err, errLocked) || !wait {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
