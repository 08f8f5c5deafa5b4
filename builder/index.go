package builder

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/store"
)

// IndexResult is an image index built and stored: a multi-platform
// build's images, or one image with its attestations.
type IndexResult struct {
	Index v1.ImageIndex
	// Descriptor is the index's: its digest is the image ID strata reports.
	Descriptor v1.Descriptor
	// Images are the platforms' images, in the index's order.
	Images []*Result
}

// Attached is a manifest an index holds beside the images, with its
// descriptor as the index lists it (an attestation manifest: platform
// unknown/unknown, annotations naming the image it is about).
type Attached struct {
	Image      v1.Image
	Descriptor v1.Descriptor
}

// StoreIndex stores an OCI index of images, each listed with the
// platform its config names and its manifest-descriptor annotations,
// followed by attached manifests (stored too), with the index
// annotations. The index-descriptor annotations are its outputs' to write.
func StoreIndex(ctx context.Context, st *store.Store, images []*Result, attached []Attached, as []Annotation) (*IndexResult, error) {
	var adds []mutate.IndexAddendum
	for _, res := range images {
		cfg, err := res.Image.ConfigFile()
		if err != nil {
			return nil, err
		}
		p := specs.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		adds = append(adds, mutate.IndexAddendum{Add: res.Image, Descriptor: v1.Descriptor{
			MediaType:   res.Descriptor.MediaType,
			Platform:    &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
			Annotations: annotationsFor(as, AnnotationManifestDescriptor, p),
		}})
	}
	for _, a := range attached {
		if err := storeArtifact(ctx, st, a.Image); err != nil {
			return nil, fmt.Errorf("storing attestation manifest: %w", err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: a.Image, Descriptor: a.Descriptor})
	}
	var idx v1.ImageIndex = mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	if a := annotationsOf(as, AnnotationIndex); a != nil {
		idx = mutate.Annotations(idx, a).(v1.ImageIndex)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	h, n, err := st.PutBlob(ctx, bytes.NewReader(raw), v1.Hash{})
	if err != nil {
		return nil, fmt.Errorf("storing index: %w", err)
	}
	return &IndexResult{Index: idx, Descriptor: v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: n}, Images: images}, nil
}

// storeArtifact stores a small in-memory image (an attestation
// manifest): its layers, config and manifest.
func storeArtifact(ctx context.Context, st *store.Store, img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	var blobs [][]byte
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err != nil {
			return err
		}
		blobs = append(blobs, buf.Bytes())
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	m, err := img.RawManifest()
	if err != nil {
		return err
	}
	for _, b := range append(blobs, cfg, m) {
		if _, _, err := st.PutBlob(ctx, bytes.NewReader(b), v1.Hash{}); err != nil {
			return err
		}
	}
	return nil
}
