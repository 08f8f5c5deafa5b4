package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/registry"
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
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}, Annotations: annotationsOf(as, AnnotationIndex)}
	byDigest := map[v1.Hash]v1.Image{}
	for _, res := range images {
		cfg, err := res.Image.ConfigFile()
		if err != nil {
			return nil, err
		}
		p := specs.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		d := res.Descriptor
		d.Platform = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		d.Annotations = annotationsFor(as, AnnotationManifestDescriptor, p)
		im.Manifests = append(im.Manifests, d)
		byDigest[d.Digest] = res.Image
	}
	for _, a := range attached {
		if err := storeArtifact(ctx, st, a.Image); err != nil {
			return nil, fmt.Errorf("storing attestation manifest: %w", err)
		}
		im.Manifests = append(im.Manifests, a.Descriptor)
		byDigest[a.Descriptor.Digest] = a.Image
	}
	// Written by hand, not with mutate.AppendManifests, which adds an
	// artifactType to every entry: the index is the one buildx writes.
	raw, err := json.Marshal(im)
	if err != nil {
		return nil, err
	}
	h, n, err := st.PutBlob(ctx, bytes.NewReader(raw), v1.Hash{})
	if err != nil {
		return nil, fmt.Errorf("storing index: %w", err)
	}
	desc := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: n}
	return &IndexResult{Index: &builtIndex{raw: raw, manifest: im, desc: desc, images: byDigest}, Descriptor: desc, Images: images}, nil
}

// builtIndex is a stored index as a v1.ImageIndex, its images the
// build's own.
type builtIndex struct {
	raw      []byte
	manifest v1.IndexManifest
	desc     v1.Descriptor
	images   map[v1.Hash]v1.Image
}

func (i *builtIndex) MediaType() (types.MediaType, error) { return i.desc.MediaType, nil }
func (i *builtIndex) Digest() (v1.Hash, error)            { return i.desc.Digest, nil }
func (i *builtIndex) Size() (int64, error)                { return i.desc.Size, nil }
func (i *builtIndex) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *builtIndex) IndexManifest() (*v1.IndexManifest, error) {
	m := i.manifest
	m.Manifests = slices.Clone(m.Manifests)
	return &m, nil
}

func (i *builtIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := i.images[h]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("index %s has no image %s", i.desc.Digest, h)
}

func (i *builtIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index %s has no index %s", i.desc.Digest, h)
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

// PushReferrers pushes OCI 1.1 referrers (manifests with a subject: the
// --attest-referrers form of attestations) to the repository of each
// name, by digest; the registry's referrers API lists them, or, without
// one, go-containerregistry keeps the sha256-<digest> fallback tag.
func PushReferrers(ctx context.Context, referrers []v1.Image, names []string, reg registry.Config) error {
	for _, n := range names {
		ref, err := reg.ParseRef(n)
		if err != nil {
			return err
		}
		for _, img := range referrers {
			h, err := img.Digest()
			if err != nil {
				return err
			}
			if err := remote.Write(ref.Context().Digest(h.String()), img, reg.RemoteOptions(ctx)...); err != nil {
				return fmt.Errorf("pushing the attestation referrer %s to %s: %w", h, ref.Context(), err)
			}
		}
	}
	return nil
}
