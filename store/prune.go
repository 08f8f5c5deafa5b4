package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PruneReport says what Prune removed.
type PruneReport struct {
	Blobs, Snapshots, CacheEntries, CacheMounts int
	Bytes                                       int64
}

// PruneOptions choose what Prune removes, as docker builder prune's flags.
type PruneOptions struct {
	// All also removes the snapshots of tagged images, which BuildKit
	// keeps without --all as records shared with images; tagged images'
	// blobs are the images themselves and always stay.
	All bool
	// KeepStorage keeps the most recently used build cache up to this
	// many bytes (0: no limit): the least recently used goes first.
	KeepStorage int64
	// Until keeps what was used less than this long ago (0: no limit).
	Until time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Prune is PruneWith without options: all the build cache but the
// snapshots of tagged images.
func (s *Store) Prune() (PruneReport, error) { return s.PruneWith(PruneOptions{}) }

// pruneItem is a thing the build cache holds: one file or directory.
type pruneItem struct {
	kind     *int // the report's count it adds to
	path     string
	size     int64
	lastUsed time.Time
}

// PruneWith removes the build cache: the cache entries, the blobs and
// snapshots no tagged image uses, the cache mounts, and the temporary
// trees of dead builds. The store must be open exclusively
// (OpenExclusive), so no build is using what it removes; each thing goes
// whole or not at all (Discard). A cache entry whose blob goes becomes a
// miss.
func (s *Store) PruneWith(opts PruneOptions) (PruneReport, error) {
	var r PruneReport
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	blobs, diffIDs, err := s.reachable()
	if err != nil {
		return r, err
	}
	var items []pruneItem
	add := func(dir string, count *int, keep func(string) bool, used func(string) time.Time) error {
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pruning: %w", err)
		}
		for _, de := range des {
			if keep != nil && keep(de.Name()) {
				continue
			}
			p := filepath.Join(dir, de.Name())
			size, last, err := usage(p)
			if err != nil {
				return fmt.Errorf("pruning: %w", err)
			}
			if used != nil {
				if t := used(de.Name()); t.After(last) {
					last = t
				}
			}
			items = append(items, pruneItem{count, p, size, last})
		}
		return nil
	}
	// A snapshot's or cache mount's own times are part of the tree a step
	// sees: its use is marked on a file in locks/ instead.
	snapshotUsed := func(name string) time.Time { return modTime(s.path("locks", "snapshot-"+name+".lock")) }
	mountUsed := func(name string) time.Time { return modTime(s.path("locks", "cache-mount-"+name+".used")) }
	steps := []error{
		add(s.path("cache"), &r.CacheEntries, nil, nil),
		add(s.path("blobs", "sha256"), &r.Blobs, func(n string) bool { return blobs[n] }, nil),
		add(s.path("snapshots", "sha256"), &r.Snapshots, func(n string) bool { return !opts.All && diffIDs[n] }, snapshotUsed),
		add(s.path("cache-mounts"), &r.CacheMounts, nil, mountUsed),
	}
	if err := errors.Join(steps...); err != nil {
		return r, err
	}
	var total int64
	for _, it := range items {
		total += it.size
	}
	// Least recently used first, so --keep-storage keeps the newest; ties
	// by path, so two prunes of one store remove the same things.
	slices.SortFunc(items, func(a, b pruneItem) int {
		if c := a.lastUsed.Compare(b.lastUsed); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	cutoff := now().Add(-opts.Until)
	for _, it := range items {
		if opts.KeepStorage > 0 && total <= opts.KeepStorage {
			break
		}
		if opts.Until > 0 && it.lastUsed.After(cutoff) {
			continue
		}
		if err := s.Discard(it.path); err != nil {
			return r, fmt.Errorf("pruning %s: %w", filepath.Base(it.path), err)
		}
		*it.kind++
		r.Bytes += it.size
		total -= it.size
	}
	// Origins name where blobs not yet local come from: kept for tagged
	// images only, as before.
	if err := s.removeExcept(s.path("origins", "sha256"), blobs); err != nil {
		return r, err
	}
	return r, s.removeExcept(s.path("build-tmp"), nil)
}

// usage is the bytes of the files at p (a file or a tree) and when it was
// last used: its modification time, which a use sets (touch). Access
// times would not do: relatime updates them once a day, and the walk
// below would.
func usage(p string) (int64, time.Time, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, time.Time{}, err
	}
	last := fi.ModTime()
	if !fi.IsDir() {
		return fi.Size(), last, nil
	}
	var size int64
	err = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	return size, last, err
}

// modTime is p's modification time, zero when p is missing.
func modTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// touch marks p as used now (a cache entry hit, a snapshot reused), for
// prune's least-recently-used order; creating p when missing. Best
// effort: a store strata cannot write is still read.
func touch(p string) {
	now := time.Now()
	if err := os.Chtimes(p, now, now); errors.Is(err, fs.ErrNotExist) {
		if f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
			f.Close()
		}
	}
}

// reachable lists the blob and diffID hex digests of every tagged image:
// its manifest, config and layers; of a tagged index, the index and all
// that of each of its children.
func (s *Store) reachable() (map[string]bool, map[string]bool, error) {
	idx, err := s.Index()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the store index: %w", err)
	}
	blobs, diffIDs, walked := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, d := range idx.Manifests {
		if err := s.markReachable(d, blobs, diffIDs, walked, 0); err != nil {
			return nil, nil, fmt.Errorf("reading image %s: %w", d.Digest, err)
		}
	}
	return blobs, diffIDs, nil
}

// image reads a stored manifest and its config.
func (s *Store) image(digest v1.Hash) (*v1.Manifest, *v1.ConfigFile, error) {
	data, err := s.readBlob(digest)
	if err != nil {
		return nil, nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	if data, err = s.readBlob(m.Config.Digest); err != nil {
		return nil, nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(data))
	return m, cfg, err
}

func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	f, err := s.OpenBlob(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// removeExcept removes the entries of dir whose names keep lacks.
func (s *Store) removeExcept(dir string, keep map[string]bool) error {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, de := range des {
		if keep[de.Name()] {
			continue
		}
		if err := s.Discard(filepath.Join(dir, de.Name())); err != nil {
			return fmt.Errorf("pruning %s: %w", de.Name(), err)
		}
	}
	return nil
}
