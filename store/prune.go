package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PruneReport says what Prune removed.
type PruneReport struct {
	Blobs, Snapshots, CacheEntries int
	Bytes                          int64
}

// Prune empties the build cache and removes the blobs and snapshots no
// tagged image uses, and the temporary trees of dead builds. The store
// must be open exclusively (OpenExclusive), so no build is using what it
// removes; each thing goes whole or not at all (Discard).
func (s *Store) Prune() (PruneReport, error) {
	var r PruneReport
	blobs, diffIDs, err := s.reachable()
	if err != nil {
		return r, err
	}
	if err := s.removeExcept(s.path("blobs", "sha256"), blobs, &r.Blobs, &r.Bytes); err != nil {
		return r, err
	}
	if err := s.removeExcept(s.path("snapshots", "sha256"), diffIDs, &r.Snapshots, &r.Bytes); err != nil {
		return r, err
	}
	if err := s.removeExcept(s.path("origins", "sha256"), blobs, new(int), new(int64)); err != nil {
		return r, err
	}
	if err := s.removeExcept(s.path("cache"), nil, &r.CacheEntries, &r.Bytes); err != nil {
		return r, err
	}
	return r, s.removeExcept(s.path("build-tmp"), nil, new(int), new(int64))
}

// reachable lists the blob and diffID hex digests of every tagged image:
// its manifest, config and layers.
func (s *Store) reachable() (map[string]bool, map[string]bool, error) {
	idx, err := s.Index()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the store index: %w", err)
	}
	blobs, diffIDs := map[string]bool{}, map[string]bool{}
	for _, d := range idx.Manifests {
		m, cfg, err := s.image(d.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("reading image %s: %w", d.Digest, err)
		}
		blobs[d.Digest.Hex] = true
		blobs[m.Config.Digest.Hex] = true
		for _, l := range m.Layers {
			blobs[l.Digest.Hex] = true
		}
		for _, h := range cfg.RootFS.DiffIDs {
			diffIDs[h.Hex] = true
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
func (s *Store) removeExcept(dir string, keep map[string]bool, count *int, bytes *int64) error {
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
		if info, err := de.Info(); err == nil {
			*bytes += info.Size()
		}
		if err := s.Discard(dir + "/" + de.Name()); err != nil {
			return fmt.Errorf("pruning %s: %w", de.Name(), err)
		}
		*count++
	}
	return nil
}
