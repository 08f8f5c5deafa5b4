package layer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Store is a directory that is an OCI image layout (oci-layout, index.json,
// blobs/sha256/) with Strata's own state beside the layout's files:
//
//	snapshots/sha256/<diffID>      layers extracted as overlay lower directories
//	snapshots/sha256/<diffID>-<n>  copies, for stacks that hold a layer n+1 times
//	cache/<sha256 of key>          the build cache's key/value entries
//	tmp/<session>/                 one directory of temporary files per Store
//	locks/                         flock(2) files guarding the index and snapshots
//
// Several processes may use one store at once. Every file becomes visible
// by rename(2) after fsync, so a blob, snapshot, cache entry or index is
// either complete or absent, whenever a build was killed.
//
// The root and every directory holding image trees (snapshots, temporary
// trees, cache mounts) are 0700, fixed on every Open: a snapshot holds what
// a RUN step made as root (a setuid shell, a device node, a file
// capability) and what pulled images carry, which no other local user may
// reach. An open Store holds a shared lock on the whole store, so that
// OpenExclusive (prune) never removes what a build is using.
type Store struct {
	root    string
	session string
	lock    *fileLock
	// shared is the store-wide lock: shared by every Store, exclusive for
	// OpenExclusive.
	shared *fileLock
}

var errLocked = errors.New("locked by another process")

// ErrNotFound is returned for a tag, blob or cache key the store lacks.
var ErrNotFound = errors.New("not found")

// privateDirs are the store's directories no other user may enter: the
// root, and below it those holding image trees. Builders keep their own
// temporary trees and cache mounts in the last two.
var privateDirs = []string{".", "snapshots", "tmp", "build-tmp", "cache-mounts"}

// ErrStoreInUse is returned by OpenExclusive without waiting when another
// process has the store open.
var ErrStoreInUse = errors.New("the store is in use by another strata process (a build?)")

// Open opens the store at root, creating it if needed, and cleans the
// temporary files of builds that died. It waits while a process holds the
// store exclusively (prune). Close it when done.
func Open(root string) (*Store, error) {
	return open(root, func(p string) (*fileLock, error) { return lockFile(p, false, true) })
}

// OpenExclusive opens the store at root once no other process has it open,
// for work that removes what others may use (prune). Without wait it fails
// with ErrStoreInUse at once when the store is busy; with wait, it calls
// waiting once and retries until the store is free or ctx ends.
func OpenExclusive(ctx context.Context, root string, wait bool, waiting func()) (*Store, error) {
	return open(root, func(p string) (*fileLock, error) {
		for first := true; ; first = false {
			l, err := lockFile(p, true, false)
			if !errors.Is(err, errLocked) {
				return l, err
			}
			if !wait {
				return nil, ErrStoreInUse
			}
			if first && waiting != nil {
				waiting()
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

func open(root string, lock func(string) (*fileLock, error)) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	s := &Store{root: abs}
	if err := s.makeDirs(); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	if s.shared, err = lock(s.path("locks", "store.lock")); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	if err := s.cleanTemp(); err != nil {
		s.shared.unlock()
		return nil, fmt.Errorf("cleaning temporary files of store %s: %w", root, err)
	}
	if err := s.newSession(); err != nil {
		s.shared.unlock()
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	if err := s.initLayout(); err != nil {
		s.Close()
		return nil, fmt.Errorf("initialising OCI layout in %s: %w", root, err)
	}
	return s, nil
}

// makeDirs creates the layout and sets the private directories to 0700,
// also when an older strata (or the caller's umask) left them open.
func (s *Store) makeDirs() error {
	for _, d := range privateDirs {
		if err := os.MkdirAll(s.path(d), 0o700); err != nil {
			return err
		}
		if err := os.Chmod(s.path(d), 0o700); err != nil {
			return err
		}
	}
	for _, d := range []string{"blobs/sha256", "snapshots/sha256", "cache", "locks"} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// Root is the absolute path of the store (and of its OCI layout).
func (s *Store) Root() string { return s.root }

// Close removes this store's temporary files and releases its locks.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := os.RemoveAll(s.session)
	if rerr := os.Remove(s.session + ".lock"); err == nil {
		err = rerr
	}
	if uerr := s.lock.unlock(); err == nil {
		err = uerr
	}
	if uerr := s.shared.unlock(); err == nil {
		err = uerr
	}
	s.lock = nil
	return err
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// newSession creates tmp/<id>/ guarded by tmp/<id>.lock, held until Close.
func (s *Store) newSession() error {
	for {
		id, err := randomID()
		if err != nil {
			return err
		}
		dir := s.path("tmp", id)
		lock, err := lockFile(dir+".lock", true, false)
		if errors.Is(err, errLocked) {
			// Another process's cleanTemp is probing this new file: pick another id.
			continue
		}
		if err != nil {
			return err
		}
		// A concurrent cleanTemp may have removed the file between its
		// creation and the flock; then the lock guards nothing: retry.
		if !lock.guards(dir + ".lock") {
			lock.unlock()
			continue
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			lock.unlock()
			return fmt.Errorf("creating session directory: %w", err)
		}
		s.session, s.lock = dir, lock
		return nil
	}
}

// cleanTemp removes the session directories whose owner is gone (its
// flock is free) and directories left without a lock file.
func (s *Store) cleanTemp() error {
	tmp := s.path("tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	locks := map[string]bool{}
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".lock"); ok {
			locks[id] = true
			if err := cleanSession(filepath.Join(tmp, id)); err != nil {
				return err
			}
		}
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") || locks[e.Name()] {
			continue
		}
		// The listing may have missed a lock file created while it ran;
		// a session creates its lock before its directory.
		if err := cleanSession(filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// cleanSession removes a session directory and its lock file unless a
// live Store holds the lock.
func cleanSession(dir string) error {
	if _, err := os.Stat(dir + ".lock"); errors.Is(err, fs.ErrNotExist) {
		return os.RemoveAll(dir)
	}
	lock, err := lockFile(dir+".lock", true, false)
	if errors.Is(err, errLocked) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lock.unlock()
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Remove(dir + ".lock"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func randomID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a temporary name: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// tempFile creates a file in this store's session directory.
func (s *Store) tempFile(prefix string) (*os.File, error) {
	f, err := os.CreateTemp(s.session, prefix+"-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary file in store: %w", err)
	}
	return f, nil
}

// commit makes the finished temporary file tmp visible as dst.
func commit(tmp *os.File, dst string) error {
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("moving into place: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

// writeFileAtomic replaces dst with data: temp file, fsync, rename, fsync.
func (s *Store) writeFileAtomic(dst string, data []byte) error {
	tmp, err := s.tempFile(filepath.Base(dst))
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := commit(tmp, dst); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// checkHash refuses anything but a well-formed sha256 digest: digests come
// from manifests of registries and become file names.
func checkHash(h v1.Hash) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return fmt.Errorf("unsupported digest %q", h.String())
	}
	if _, err := hex.DecodeString(h.Hex); err != nil || strings.ToLower(h.Hex) != h.Hex {
		return fmt.Errorf("malformed digest %q", h.String())
	}
	return nil
}
