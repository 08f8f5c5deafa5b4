package store

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

	"github.com/strata-build/strata/internal/durable"
)

// Store is a directory that is an OCI image layout (oci-layout, index.json,
// blobs/sha256/) with Strata's own state beside the layout's files:
//
//	snapshots/sha256/<diffID>      layers extracted as overlay lower directories
//	snapshots/sha256/<diffID>-<n>  copies, for stacks that hold a layer n+1 times
//	cache/<sha256 of key>          the build cache's key/value entries
//	origins/sha256/<digest>        the repository holding a blob not yet local
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
	// OpenExclusive, which also holds gate, the lock every Open passes.
	shared *fileLock
	gate   *fileLock
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
	return open(root, func(p string) (*fileLock, error) {
		// Through the gate: while a prune waits for the builds already in, a
		// new build waits behind it instead of keeping it out for ever.
		gate, err := lockFile(filepath.Join(filepath.Dir(p), "gate.lock"), false, true)
		if err != nil {
			return nil, err
		}
		defer gate.unlock()
		return lockFile(p, false, true)
	})
}

// OpenExclusive opens the store at root once no other process has it open,
// for work that removes what others may use (prune). Without wait it fails
// with ErrStoreInUse at once when the store is busy; with wait, it calls
// waiting once and retries until the store is free or ctx ends.
func OpenExclusive(ctx context.Context, root string, wait bool, waiting func()) (*Store, error) {
	var gate *fileLock
	s, err := open(root, func(p string) (*fileLock, error) {
		// The gate is held only for a moment by builds opening the store.
		var err error
		if gate, err = lockFile(filepath.Join(filepath.Dir(p), "gate.lock"), true, true); err != nil {
			return nil, err
		}
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
	if err != nil {
		if gate != nil {
			gate.unlock()
		}
		return nil, err
	}
	s.gate = gate
	return s, nil
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
//
// It first makes sure no other user controls the store: each private
// directory must be a real directory (not a symlink) owned by the user
// strata runs as, and no ancestor of the root may be writable by others
// without the sticky bit. Otherwise a user who pre-created the store in a
// shared directory (/tmp, a CI workspace) could point its temporary
// directory at any path root then cleans, or hold its locks.
func (s *Store) makeDirs() error {
	if err := os.MkdirAll(filepath.Dir(s.root), 0o755); err != nil {
		return err
	}
	if err := checkAncestors(filepath.Dir(s.root)); err != nil {
		return err
	}
	for _, d := range privateDirs {
		p := s.path(d)
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := checkOwnDir(p); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return err
		}
	}
	for _, d := range []string{"blobs/sha256", "snapshots/sha256", "cache", "locks", "origins/sha256"} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// checkOwnDir refuses p unless it is a directory, not a symlink, owned by
// the user strata runs as.
func checkOwnDir(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (a symlink?): refusing to use it as part of the store", p)
	}
	if uid, ok := ownerUID(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to the user strata runs as (%d): another user could control the store", p, uid, os.Geteuid())
	}
	return nil
}

// checkAncestors refuses a store below a directory other users may change
// (group- or world-writable without the sticky bit), as ssh does for its
// files: they could swap the store for one of theirs.
func checkAncestors(dir string) error {
	for {
		fi, err := os.Stat(dir)
		if err == nil && fi.Mode()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
			return fmt.Errorf("store directory %s is writable by other users: use a --root only you can change", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
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
	if s.gate != nil {
		s.gate.unlock()
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

// Discard removes p, a file or directory inside the store, without ever
// leaving it half removed: it is first renamed into this Store's temporary
// directory, so a snapshot, say, is whole or gone even when the remover is
// killed (the next Open cleans what was renamed).
func (s *Store) Discard(p string) error {
	rel, err := filepath.Rel(s.root, p)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("discarding %s: not inside the store", p)
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	trash := filepath.Join(s.session, "discard-"+id)
	if err := os.Rename(p, trash); err != nil {
		return fmt.Errorf("discarding %s: %w", rel, err)
	}
	return os.RemoveAll(trash)
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
	if err := durable.Commit(tmp, dst); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", dst, err)
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
