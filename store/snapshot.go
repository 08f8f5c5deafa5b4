package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/internal/durable"
	"github.com/strata-build/strata/layer"
)

// Snapshot returns the directory holding l extracted as an overlay lower
// directory, extracting it on first use. The directory is keyed by diffID
// and is complete whenever it exists: extraction goes to a temporary
// directory that is renamed into place once the content is verified to
// hash to the diffID. A layer written with WriteOptions.Adopt has its
// directory moved here instead, when owners are on disk. Concurrent
// callers for one layer extract it once.
// opts.Mode is ignored (always OverlayLower). Callers must not modify the
// returned directory.
func (s *Store) Snapshot(ctx context.Context, l v1.Layer, opts layer.ExtractOptions) (string, error) {
	return s.snapshot(ctx, l, 0, opts)
}

// SnapshotCopy returns the n-th further snapshot directory of l (n >= 1),
// for a stack of layers that holds l n+1 times: overlayfs refuses one
// directory twice among its lowers (the kernel logs "conflicting lowerdir
// path" and the mount fails with ELOOP), and neither copy may be dropped:
// the upper one covers what the layers between them changed, and without
// the lower one a directory only the copies hold would no longer be merged
// (overlayfs shows a merged directory with one link).
// BuildKit never meets this: containerd's snapshotter keys a snapshot by
// its chain of parents, not by its diffID. A copy is extracted from the
// blob as Snapshot's first extraction is (never adopted), lives beside it
// as <diffID>-<n>, and is complete whenever it exists. Copies are only
// derived data: a prune, which keeps snapshots by diffID, removes them.
func (s *Store) SnapshotCopy(ctx context.Context, l v1.Layer, n int, opts layer.ExtractOptions) (string, error) {
	if n < 1 {
		return "", fmt.Errorf("snapshot copy %d: copies count from 1", n)
	}
	return s.snapshot(ctx, l, n, opts)
}

// snapshot is the n-th directory of l: 0 is the snapshot, more a copy.
func (s *Store) snapshot(ctx context.Context, l v1.Layer, n int, opts layer.ExtractOptions) (string, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return "", fmt.Errorf("snapshot: reading diffID: %w", err)
	}
	if err := checkHash(diffID); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	name := diffID.Hex
	if n > 0 {
		name += "-" + strconv.Itoa(n)
	}
	dst := s.path("snapshots", diffID.Algorithm, name)
	if exists(dst) {
		// Used again: for prune's least-recently-used order (the lock
		// file, as the tree's own times are the step's to see).
		touch(s.path("locks", "snapshot-"+name+".lock"))
		return dst, nil
	}
	lock, err := lockFile(s.path("locks", "snapshot-"+name+".lock"), true, true)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", diffID, err)
	}
	defer lock.unlock()
	if exists(dst) {
		return dst, nil
	}
	// Only the first directory may be the adopted one: adoption moves it.
	onDisk := opts.Owners == nil || opts.Owners.OnDisk()
	if ours, ok := l.(*layer.Layer); ok && ours.Adoption() != nil && onDisk && n == 0 {
		adopted, err := ours.Adoption().Into(dst)
		if err != nil {
			return "", fmt.Errorf("snapshot %s: %w", diffID, err)
		}
		if adopted {
			return dst, nil
		}
	}
	if err := s.extractSnapshot(ctx, l, diffID, dst, opts); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", diffID, err)
	}
	return dst, nil
}

func (s *Store) extractSnapshot(ctx context.Context, l v1.Layer, diffID v1.Hash, dst string, opts layer.ExtractOptions) error {
	tmp, err := os.MkdirTemp(s.session, "snapshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp made it 0700; as the root of a mount it must be traversable.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	opts.Mode = layer.OverlayLower
	got, err := layer.Extract(ctx, rc, tmp, opts)
	if err != nil {
		return err
	}
	if got != diffID {
		return fmt.Errorf("layer content has diffID %s", got)
	}
	// Nothing re-checks a snapshot once it is in place, so its files must be on
	// disk before the rename makes it visible (a power loss could leave them empty).
	if err := durable.SyncFS(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("moving snapshot into place: %w", err)
	}
	return durable.SyncDir(s.path("snapshots", diffID.Algorithm))
}

// SnapshotPath is where the snapshot of diffID lives, whether it exists.
func (s *Store) SnapshotPath(diffID v1.Hash) (string, error) {
	if err := checkHash(diffID); err != nil {
		return "", err
	}
	return s.path("snapshots", diffID.Algorithm, diffID.Hex), nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
