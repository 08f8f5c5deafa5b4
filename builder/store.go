package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// StoreName is the name an image is tagged under in the store: the name
// as given, with ":latest" when it has neither tag nor digest.
func StoreName(ref string) string {
	last := ref[strings.LastIndex(ref, "/")+1:]
	if strings.ContainsAny(last, ":@") {
		return ref
	}
	return ref + ":latest"
}

// storeImage writes the config and manifest of img to the store and
// returns the result. Its layers are in the store, or (reused from a
// registry and never read) recorded with the repository that holds them.
func storeImage(ctx context.Context, st *store.Store, img v1.Image, layers []*layer.Layer) (*Result, error) {
	for _, l := range layers {
		d := l.Descriptor()
		if ok, err := st.HasBlob(d.Digest); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		if l.Origin() != "" {
			if err := st.SetOrigin(d.Digest, l.Origin()); err != nil {
				return nil, err
			}
			continue
		}
		// From a cache directory: copied in, as nothing else can fetch it
		// later.
		if err := copyIntoStore(ctx, st, l); err != nil {
			return nil, err
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	if _, _, err := st.PutBlob(ctx, bytes.NewReader(cfg), v1.Hash{}); err != nil {
		return nil, fmt.Errorf("storing image config: %w", err)
	}
	m, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	digest, size, err := st.PutBlob(ctx, bytes.NewReader(m), v1.Hash{})
	if err != nil {
		return nil, fmt.Errorf("storing image manifest: %w", err)
	}
	desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: digest, Size: size}
	return &Result{Image: img, Descriptor: desc}, nil
}

// copyIntoStore makes l's blob a blob of the store.
func copyIntoStore(ctx context.Context, st *store.Store, l *layer.Layer) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	d := l.Descriptor()
	if ok, err := st.HasBlob(d.Digest); err != nil || ok {
		return err
	}
	if _, _, err := st.PutBlob(ctx, rc, d.Digest); err != nil {
		return fmt.Errorf("storing layer %s: %w", d.Digest, err)
	}
	return nil
}

// Tag tags the result in the store under each name.
func Tag(st *store.Store, res *Result, names []string) error {
	return tagDescriptor(st, res.Descriptor, names)
}

// TagIndex tags the stored image index desc (StoreIndex's) under each
// name: the names of a multi-platform build.
func TagIndex(st *store.Store, desc v1.Descriptor, names []string) error {
	if !desc.MediaType.IsIndex() {
		return fmt.Errorf("tagging %s: %s is a %s, not an image index", strings.Join(names, ", "), desc.Digest, desc.MediaType)
	}
	return tagDescriptor(st, desc, names)
}

func tagDescriptor(st *store.Store, desc v1.Descriptor, names []string) error {
	for _, n := range names {
		if err := st.Tag(StoreName(n), desc); err != nil {
			return fmt.Errorf("tagging %s: %w", n, err)
		}
	}
	return nil
}

// OpenImage returns the image tagged name in the store, its manifest and
// config exactly as stored. Layers not yet local are read from the
// registry recorded for them (through reg) when their bytes are needed.
// A name tagging a multi-platform index is refused, naming its platforms:
// see OpenPlatformImage and OpenIndex.
func OpenImage(ctx context.Context, st *store.Store, name string, reg registry.Config) (v1.Image, v1.Descriptor, error) {
	return OpenPlatformImage(ctx, st, name, nil, reg)
}

// OpenPlatformImage is OpenImage, and for a name tagging an index, its
// image for platform p (nil: refused, naming the platforms it holds).
func OpenPlatformImage(ctx context.Context, st *store.Store, name string, p *v1.Platform, reg registry.Config) (v1.Image, v1.Descriptor, error) {
	desc, err := st.Resolve(StoreName(name))
	if err != nil {
		// Resolve's error names the image already.
		return nil, v1.Descriptor{}, err
	}
	if desc.MediaType.IsIndex() {
		idx, err := openIndex(ctx, st, desc, reg)
		if err != nil {
			return nil, desc, fmt.Errorf("image %s: %w", name, err)
		}
		return idx.platformImage(name, p)
	}
	img, err := LoadImage(ctx, st, desc, reg)
	if err != nil {
		return nil, desc, fmt.Errorf("image %s: %w", name, err)
	}
	bi := &builtImage{layers: map[v1.Hash]*layer.Layer{}}
	if bi.manifest, err = readBlob(st, desc.Digest); err != nil {
		return nil, desc, err
	}
	if bi.config, err = readBlob(st, img.Manifest.Config.Digest); err != nil {
		return nil, desc, err
	}
	for _, l := range img.Layers {
		bi.layers[l.Descriptor().Digest] = l
	}
	out, err := bi.image()
	return out, desc, err
}

func readBlob(st *store.Store, h v1.Hash) ([]byte, error) {
	f, err := st.OpenBlob(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// OpenIndex returns the index tagged name in the store as
// go-containerregistry's ImageIndex, with its descriptor: its manifests
// and configs read from the store when asked for, its layers as
// OpenImage's (read from their origin through reg when not yet local).
func OpenIndex(ctx context.Context, st *store.Store, name string, reg registry.Config) (v1.ImageIndex, v1.Descriptor, error) {
	desc, err := st.Resolve(StoreName(name))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if !desc.MediaType.IsIndex() {
		return nil, desc, fmt.Errorf("image %s is a single image (%s), not a multi-platform index", name, desc.MediaType)
	}
	idx, err := openIndex(ctx, st, desc, reg)
	if err != nil {
		return nil, desc, fmt.Errorf("image %s: %w", name, err)
	}
	return idx, desc, nil
}

func openIndex(ctx context.Context, st *store.Store, desc v1.Descriptor, reg registry.Config) (*storedIndex, error) {
	return openIndexWith(st, desc, registry.NewBlobs(ctx, st, reg, nil))
}

func openIndexWith(st *store.Store, desc v1.Descriptor, blobs *registry.Blobs) (*storedIndex, error) {
	raw, err := readBlob(st, desc.Digest)
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	return &storedIndex{st: st, desc: desc, raw: raw, manifest: im, blobs: blobs}, nil
}

// storedIndex is an index of the store as a v1.ImageIndex; its children
// are opened when asked for.
type storedIndex struct {
	st       *store.Store
	desc     v1.Descriptor
	raw      []byte
	manifest *v1.IndexManifest
	blobs    *registry.Blobs
}

func (x *storedIndex) MediaType() (types.MediaType, error) { return x.desc.MediaType, nil }
func (x *storedIndex) Digest() (v1.Hash, error)            { return x.desc.Digest, nil }
func (x *storedIndex) Size() (int64, error)                { return int64(len(x.raw)), nil }
func (x *storedIndex) RawManifest() ([]byte, error)        { return x.raw, nil }
func (x *storedIndex) IndexManifest() (*v1.IndexManifest, error) {
	return x.manifest.DeepCopy(), nil
}

func (x *storedIndex) child(h v1.Hash) (v1.Descriptor, error) {
	for _, d := range x.manifest.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("index %s lists no manifest %s", x.desc.Digest, h)
}

func (x *storedIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return openManifest(x.st, d, x.blobs)
}

func (x *storedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return openIndexWith(x.st, d, x.blobs)
}

// Blob is what go-containerregistry's layout writer asks for a child that
// is neither an image nor an index.
func (x *storedIndex) Blob(h v1.Hash) (io.ReadCloser, error) { return x.st.OpenBlob(h) }

// platformImage is the index's image for p; nil p is refused, naming the
// platforms there are.
func (x *storedIndex) platformImage(name string, p *v1.Platform) (v1.Image, v1.Descriptor, error) {
	var have []string
	for _, d := range store.PlatformImages(x.manifest) {
		if p != nil && d.Platform != nil && platforms.NewMatcher(specsPlatform(*p)).Match(specsPlatform(*d.Platform)) {
			img, err := openManifest(x.st, d, x.blobs)
			if err != nil {
				return nil, d, fmt.Errorf("image %s (%s): %w", name, descPlatform(d), err)
			}
			return img, d, nil
		}
		have = append(have, descPlatform(d))
	}
	slices.Sort(have)
	if p != nil {
		return nil, x.desc, fmt.Errorf("image %s has no image for %s: it holds %s", name, p, strings.Join(have, ", "))
	}
	return nil, x.desc, fmt.Errorf("image %s is a multi-platform index (%s): name one platform", name, strings.Join(have, ", "))
}

// descPlatform is d's platform as buildx writes it (linux/arm/v7), or
// "no platform".
func descPlatform(d v1.Descriptor) string {
	if d.Platform == nil {
		return "no platform"
	}
	return d.Platform.String()
}

// openManifest is the stored manifest d as a v1.Image: its config and
// manifest as stored, image layers as LoadImage's (with their origins,
// for a push to mount them), other blobs (an attestation's in-toto
// statements) as they are.
func openManifest(st *store.Store, d v1.Descriptor, blobs *registry.Blobs) (v1.Image, error) {
	si := &storedManifest{mediaType: d.MediaType, layers: map[v1.Hash]partial.CompressedLayer{}}
	var err error
	if si.manifest, err = readBlob(st, d.Digest); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(si.manifest))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if si.config, err = readBlob(st, m.Config.Digest); err != nil {
		return nil, fmt.Errorf("manifest %s: config: %w", d.Digest, err)
	}
	var cfg v1.ConfigFile
	_ = json.Unmarshal(si.config, &cfg) // an artifact's config may be anything
	origins := map[v1.Hash]*layer.Layer{}
	for i, ld := range m.Layers {
		if _, cerr := layer.CompressionOf(ociLayerType(ld.MediaType)); cerr == nil && i < len(cfg.RootFS.DiffIDs) {
			l, err := blobs.Stored(ld, cfg.RootFS.DiffIDs[i])
			if err != nil {
				return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
			}
			si.layers[ld.Digest], origins[ld.Digest] = l, l
			continue
		}
		si.layers[ld.Digest] = &storedBlob{st: st, desc: ld}
	}
	img, err := partial.CompressedToImage(si)
	if err != nil {
		return nil, err
	}
	return &originImage{Image: img, layers: origins}, nil
}

// storedManifest is a manifest of the store with its own media type (an
// index may hold docker manifests).
type storedManifest struct {
	mediaType        types.MediaType
	manifest, config []byte
	layers           map[v1.Hash]partial.CompressedLayer
}

func (i *storedManifest) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *storedManifest) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *storedManifest) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *storedManifest) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("image has no layer %s", h)
}

// storedBlob is a blob of the store that is no image layer.
type storedBlob struct {
	st   *store.Store
	desc v1.Descriptor
}

func (b *storedBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *storedBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *storedBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *storedBlob) Compressed() (io.ReadCloser, error)  { return b.st.OpenBlob(b.desc.Digest) }

func specsPlatform(p v1.Platform) specs.Platform {
	return platforms.Normalize(specs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures})
}

// IndexSummary is what `strata images` shows of the stored index desc:
// the bytes of every distinct blob it holds (the index, each manifest,
// config and layer, attestations included: what a push or save moves),
// and the creation time of its image for this machine's architecture, or
// else of its first platform's.
func IndexSummary(st *store.Store, desc v1.Descriptor) (int64, time.Time, error) {
	im, err := st.IndexManifest(desc.Digest)
	if err != nil {
		return 0, time.Time{}, err
	}
	seen := map[v1.Hash]bool{desc.Digest: true}
	size := desc.Size
	add := func(d v1.Descriptor) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			size += d.Size
		}
	}
	for _, d := range im.Manifests {
		add(d)
		if d.MediaType.IsIndex() {
			continue // nested: counted by its own size only
		}
		var m v1.Manifest
		if err := readJSON(st, d.Digest, &m); err != nil {
			return 0, time.Time{}, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		add(m.Config)
		for _, l := range m.Layers {
			add(l)
		}
	}
	var created time.Time
	imgs := store.PlatformImages(im)
	for i, d := range imgs {
		if i > 0 && (d.Platform == nil || d.Platform.Architecture != runtime.GOARCH) {
			continue
		}
		var m v1.Manifest
		var cfg v1.ConfigFile
		if err := readJSON(st, d.Digest, &m); err != nil {
			return 0, time.Time{}, err
		}
		if err := readJSON(st, m.Config.Digest, &cfg); err != nil {
			return 0, time.Time{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
		}
		created = cfg.Created.Time
		if d.Platform != nil && d.Platform.Architecture == runtime.GOARCH {
			break
		}
	}
	return size, created, nil
}
