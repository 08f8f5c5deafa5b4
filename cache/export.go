package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
)

// Step is one step of a build as an export sees it: its key and entry,
// and whether it is in the final image's chain (mode=min exports only
// those).
type Step struct {
	Key      string
	Layer    *layer.Layer
	History  v1.History
	Explain  *Explain
	InTarget bool
}

// MountDir is a cache mount (RUN --mount=type=cache) a build used: its id
// and its directory in the store.
type MountDir struct {
	ID, Dir string
	// Owners reads the owners of Dir's files: recorded ones in a rootless build without
	// subordinate IDs (nil: on disk).
	Owners owners.Policy
}

// Export writes the build's cache to spec (type registry or local): the
// entries of its steps (mode=min: the final image's; max: all), their
// explain records and, with cache-mounts=true, the cache mounts. A layer a
// registry already holds is mounted there, not downloaded; the blobs are
// written before the manifest that names them, so a failed export leaves
// the previous cache usable. It reports one vertex to sink.
func Export(ctx context.Context, spec Spec, steps []Step, mounts []MountDir, blobs *registry.Blobs, sink progress.Sink) (err error) {
	if sink == nil {
		sink = progress.Discard
	}
	id := "export-cache:" + spec.Type + ":" + spec.Name()
	start := time.Now()
	sink.Event(progress.VertexStarted{ID: id, Name: "exporting cache to " + spec.Type + " " + spec.Name(), Started: start})
	defer func() {
		if err != nil {
			sink.Event(progress.VertexError{ID: id, Message: err.Error(), Duration: time.Since(start)})
			return
		}
		sink.Event(progress.VertexDone{ID: id, Duration: time.Since(start)})
	}()
	a, err := newArtifact(ctx, spec, steps, mounts, blobs)
	if err != nil {
		return err
	}
	switch spec.Type {
	case "registry":
		return a.push(ctx, spec, blobs.Config())
	case "local":
		return writeLayout(ctx, layoutDir(spec.Dir), spec.Tag, a.manifest, a.sources())
	}
	return fmt.Errorf("cannot export a cache of type %s", spec.Type)
}

// artifact is a cache manifest with its config and blobs.
type artifact struct {
	manifest []byte
	config   []byte
	desc     []v1.Descriptor
	layers   map[v1.Hash]partial.CompressedLayer
	origins  map[v1.Hash]string
}

// ociManifest is an OCI image manifest with artifactType, which
// go-containerregistry's v1.Manifest lacks.
type ociManifest struct {
	SchemaVersion int64           `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	ArtifactType  string          `json:"artifactType"`
	Config        v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
}

func newArtifact(ctx context.Context, spec Spec, steps []Step, mounts []MountDir, blobs *registry.Blobs) (*artifact, error) {
	a := &artifact{layers: map[v1.Hash]partial.CompressedLayer{}, origins: map[v1.Hash]string{}}
	index := map[v1.Hash]int{}
	add := func(d v1.Descriptor, l partial.CompressedLayer) int {
		if i, ok := index[d.Digest]; ok {
			return i
		}
		index[d.Digest] = len(a.desc)
		a.desc = append(a.desc, d)
		a.layers[d.Digest] = l
		return index[d.Digest]
	}
	c := Config{Version: formatVersion, Entries: []Record{}}
	var explains []*Explain
	seen := map[string]bool{}
	for _, s := range steps {
		if seen[s.Key] || spec.Mode != "max" && !s.InTarget {
			continue
		}
		seen[s.Key] = true
		r := Record{Key: s.Key, Layer: -1, History: s.History}
		if s.Layer != nil {
			d := s.Layer.Descriptor()
			diffID, _ := s.Layer.DiffID()
			r.Layer, r.DiffID = add(d, s.Layer), &diffID
			if o := s.Layer.Origin(); o != "" {
				a.origins[d.Digest] = o
			}
		}
		c.Entries = append(c.Entries, r)
		if s.Explain != nil {
			explains = append(explains, s.Explain)
		}
	}
	if len(explains) > 0 {
		b, err := encodeExplains(explains)
		if err != nil {
			return nil, err
		}
		bl := newBytesLayer(b, ExplainMediaType)
		add(bl.desc, bl)
	}
	if spec.CacheMounts {
		for _, m := range mounts {
			l, err := blobs.Store().WriteLayer(ctx, m.Dir, layer.WriteOptions{Source: layer.FromDir, Compression: layer.Gzip, Owners: m.Owners})
			if err != nil {
				return nil, fmt.Errorf("cache mount %s: %w", m.ID, err)
			}
			d := l.Descriptor()
			d.MediaType = MountMediaType
			c.Mounts = append(c.Mounts, Mount{ID: m.ID, Layer: add(d, l)})
		}
	}
	var err error
	if a.config, err = json.Marshal(c); err != nil {
		return nil, err
	}
	cd, err := descriptorOf(a.config, ConfigMediaType)
	if err != nil {
		return nil, err
	}
	m := ociManifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType, Config: cd, Layers: a.desc}
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	if a.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return a, nil
}

func descriptorOf(b []byte, mt types.MediaType) (v1.Descriptor, error) {
	h, n, err := v1.SHA256(bytes.NewReader(b))
	return v1.Descriptor{MediaType: mt, Digest: h, Size: n}, err
}

// push writes the artifact to spec.Ref; go-containerregistry skips the
// blobs the repository has and mounts those of the same registry.
func (a *artifact) push(ctx context.Context, spec Spec, cfg registry.Config) error {
	ref, err := cfg.ParseRef(spec.Ref)
	if err != nil {
		return err
	}
	img, err := partial.CompressedToImage(a)
	if err != nil {
		return err
	}
	img, err = cfg.Mountable(img, func(h v1.Hash) string { return a.origins[h] })
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, cfg.RemoteOptions(ctx)...); err != nil {
		return registryError(err)
	}
	return nil
}

// sources are the blobs a layout export writes: the layers, the config.
func (a *artifact) sources() []blobSource {
	var out []blobSource
	for _, d := range a.desc {
		l := a.layers[d.Digest]
		out = append(out, blobSource{desc: d, open: l.Compressed})
	}
	cd, _ := descriptorOf(a.config, ConfigMediaType)
	cfg := a.config
	return append(out, blobSource{desc: cd, open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil }})
}

// The artifact is a partial.CompressedImageCore, for remote.Write.

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("cache has no blob %s", h)
}

// bytesLayer is a small blob held in memory (the explain records).
type bytesLayer struct {
	data []byte
	desc v1.Descriptor
}

func newBytesLayer(b []byte, mt types.MediaType) *bytesLayer {
	d, _ := descriptorOf(b, mt)
	return &bytesLayer{data: b, desc: d}
}

func (b *bytesLayer) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *bytesLayer) Size() (int64, error)                { return b.desc.Size, nil }
func (b *bytesLayer) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *bytesLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.data)), nil
}

// Inline is the inline form of the final image's steps, for the image's
// config under InlineKey: the records of steps in the target, each layer
// an index into the image's layers.
func Inline(steps []Step, imageLayers []v1.Descriptor) (json.RawMessage, error) {
	index := map[v1.Hash]int{}
	for i, d := range imageLayers {
		if _, ok := index[d.Digest]; !ok {
			index[d.Digest] = i
		}
	}
	c := Config{Version: formatVersion, Entries: []Record{}}
	seen := map[string]bool{}
	for _, s := range steps {
		if !s.InTarget || seen[s.Key] {
			continue
		}
		seen[s.Key] = true
		r := Record{Key: s.Key, Layer: -1, History: s.History}
		if s.Layer != nil {
			i, ok := index[s.Layer.Descriptor().Digest]
			if !ok {
				continue
			}
			diffID, _ := s.Layer.DiffID()
			r.Layer, r.DiffID = i, &diffID
		}
		c.Entries = append(c.Entries, r)
	}
	b, err := json.Marshal(c)
	return b, err
}
