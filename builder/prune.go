package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/layer"
)

// PruneReport says what Prune removed.
type PruneReport struct {
	Blobs, Snapshots, CacheEntries int
	Bytes                          int64
}

// Prune empties the build cache and removes the blobs and snapshots no
// tagged image uses, plus temporary files of dead builds. st must be open
// exclusively (layer.OpenExclusive), so no build is using what it removes.
func Prune(st *layer.Store) (PruneReport, error) {
	var r PruneReport
	blobs, diffIDs, err := reachable(st)
	if err != nil {
		return r, err
	}
	if err := removeExcept(st, filepath.Join(st.Root(), "blobs", "sha256"), blobs, &r.Blobs, &r.Bytes); err != nil {
		return r, err
	}
	if err := removeExcept(st, filepath.Join(st.Root(), "snapshots", "sha256"), diffIDs, &r.Snapshots, &r.Bytes); err != nil {
		return r, err
	}
	if err := removeExcept(st, filepath.Join(st.Root(), "cache"), nil, &r.CacheEntries, &r.Bytes); err != nil {
		return r, err
	}
	return r, os.RemoveAll(filepath.Join(st.Root(), "build-tmp"))
}

// reachable lists the blob and diffID hex digests of every tagged image.
func reachable(st *layer.Store) (map[string]bool, map[string]bool, error) {
	idx, err := st.Index()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the store index: %w", err)
	}
	blobs, diffIDs := map[string]bool{}, map[string]bool{}
	for _, d := range idx.Manifests {
		img, err := LoadImage(st, d)
		if err != nil {
			return nil, nil, fmt.Errorf("reading image %s: %w", d.Digest, err)
		}
		blobs[d.Digest.Hex] = true
		blobs[img.Manifest.Config.Digest.Hex] = true
		for _, l := range img.Manifest.Layers {
			blobs[l.Digest.Hex] = true
		}
		for _, h := range img.Config.RootFS.DiffIDs {
			diffIDs[h.Hex] = true
		}
	}
	return blobs, diffIDs, nil
}

// removeExcept removes the entries of dir whose names keep lacks, each
// whole or not at all (Store.Discard).
func removeExcept(st *layer.Store, dir string, keep map[string]bool, count *int, bytes *int64) error {
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
		if err := st.Discard(filepath.Join(dir, de.Name())); err != nil {
			return fmt.Errorf("pruning %s: %w", de.Name(), err)
		}
		*count++
	}
	return nil
}

// ImageSize is the sum of the compressed sizes of an image's blobs.
func ImageSize(img *StoredImage, manifest v1.Descriptor) int64 {
	n := manifest.Size + img.Manifest.Config.Size
	for _, l := range img.Manifest.Layers {
		n += l.Size
	}
	return n
}
