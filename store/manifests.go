package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/layer"
)

// maxNesting bounds how deep indexes may hold indexes: a loop of digests
// is impossible, but a hostile archive could still nest without end.
const maxNesting = 8

// IndexManifest reads the stored image index (or docker manifest list) h.
func (s *Store) IndexManifest(h v1.Hash) (*v1.IndexManifest, error) {
	data, err := s.readBlob(h)
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", h, err)
	}
	return idx, nil
}

// IsAttestation reports whether d is not an image to run but what
// BuildKit attaches to one in an index (provenance, SBOM): its platform
// unknown/unknown, or its reference-type annotation.
func IsAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] != "" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// PlatformImages are the images of an index to run: its image manifests
// but attestations.
func PlatformImages(idx *v1.IndexManifest) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.MediaType.IsImage() && !IsAttestation(d) {
			out = append(out, d)
		}
	}
	return out
}

// markReachable adds the blobs of the manifest or index d to blobs and its
// layers' diffIDs to diffIDs: an index keeps its children, their configs
// and layers. A child missing from the store (never loaded) has nothing to
// keep; an unreadable one fails, so prune never guesses.
func (s *Store) markReachable(d v1.Descriptor, blobs, diffIDs, walked map[string]bool, depth int) error {
	if d.MediaType.IsIndex() {
		if depth >= maxNesting {
			return fmt.Errorf("index %s: indexes nested more than %d deep", d.Digest, maxNesting)
		}
		if walked[d.Digest.Hex] {
			// An index naming the same index over and over (a hostile one)
			// costs one walk, not one per path to it.
			return nil
		}
		idx, err := s.IndexManifest(d.Digest)
		if err != nil {
			return err
		}
		blobs[d.Digest.Hex], walked[d.Digest.Hex] = true, true
		for _, c := range idx.Manifests {
			if ok, err := s.HasBlob(c.Digest); err != nil {
				return err
			} else if !ok {
				continue
			}
			if err := s.markReachable(c, blobs, diffIDs, walked, depth+1); err != nil {
				return fmt.Errorf("index %s: %w", d.Digest, err)
			}
		}
		return nil
	}
	data, err := s.readBlob(d.Digest)
	if err != nil {
		return err
	}
	m, err := v1.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	blobs[d.Digest.Hex] = true
	blobs[m.Config.Digest.Hex] = true
	for _, l := range m.Layers {
		blobs[l.Digest.Hex] = true
	}
	if depth > 0 && !strings.Contains(string(m.Config.MediaType), "image.config") && !strings.Contains(string(m.Config.MediaType), "container.image") {
		return nil // an artifact's config: no layers to snapshot
	}
	if data, err = s.readBlob(m.Config.Digest); err != nil {
		if depth > 0 && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	for _, h := range cfg.RootFS.DiffIDs {
		diffIDs[h.Hex] = true
	}
	return nil
}

// loadIndex stores the index d of archive a whole: every child manifest
// (nested indexes too), config and blob, each checked against its
// descriptor's digest and size, manifests byte for byte (the index names
// them by digest).
func (s *Store) loadIndex(ctx context.Context, a archive, d v1.Descriptor, depth int, loaded map[v1.Hash]bool) error {
	if depth >= maxNesting {
		return fmt.Errorf("index %s: indexes nested more than %d deep", d.Digest, maxNesting)
	}
	if loaded[d.Digest] {
		// Stored already: an index naming the same child over and over (a
		// hostile archive) is loaded in time linear in its distinct ones.
		return nil
	}
	name, err := blobName(d.Digest)
	if err != nil {
		return err
	}
	var idx v1.IndexManifest
	if err := readJSON(a, name, &idx); err != nil {
		return fmt.Errorf("index %s: %w", d.Digest, err)
	}
	for _, c := range idx.Manifests {
		var err error
		switch {
		case c.MediaType.IsIndex():
			err = s.loadIndex(ctx, a, c, depth+1, loaded)
		case !loaded[c.Digest]:
			err = s.loadVerbatim(ctx, a, c)
			loaded[c.Digest] = err == nil
		}
		if err != nil {
			return fmt.Errorf("index %s: %w", d.Digest, err)
		}
	}
	if err := s.putOCIBlob(ctx, a, d); err != nil {
		return err
	}
	loaded[d.Digest] = true
	return nil
}

// loadVerbatim stores the manifest d, its config and layers as they are.
// A layer of an image (gzip, zstd or plain tar) is refused unless strata
// can read its compression; an attestation's blobs (in-toto JSON) are
// kept as blobs.
func (s *Store) loadVerbatim(ctx context.Context, a archive, d v1.Descriptor) error {
	name, err := blobName(d.Digest)
	if err != nil {
		return err
	}
	var m v1.Manifest
	if err := readJSON(a, name, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.Config.Digest != (v1.Hash{}) {
		if err := s.putOCIBlob(ctx, a, m.Config); err != nil {
			return fmt.Errorf("manifest %s: config: %w", d.Digest, err)
		}
	}
	for _, l := range m.Layers {
		if d.MediaType.IsImage() && !IsAttestation(d) {
			if _, err := layer.CompressionOf(ociLayerType(l.MediaType)); err != nil {
				return fmt.Errorf("manifest %s: %w", d.Digest, err)
			}
		}
		if err := s.putOCIBlob(ctx, a, l); err != nil {
			return fmt.Errorf("manifest %s: layer: %w", d.Digest, err)
		}
	}
	if err := s.putOCIBlob(ctx, a, d); err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	return nil
}
