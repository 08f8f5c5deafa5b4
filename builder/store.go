package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

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
	for _, n := range names {
		if err := st.Tag(StoreName(n), res.Descriptor); err != nil {
			return fmt.Errorf("tagging %s: %w", n, err)
		}
	}
	return nil
}

// OpenImage returns the image tagged name in the store, its manifest and
// config exactly as stored. Layers not yet local are read from the
// registry recorded for them (through reg) when their bytes are needed.
func OpenImage(ctx context.Context, st *store.Store, name string, reg registry.Config) (v1.Image, v1.Descriptor, error) {
	desc, err := st.Resolve(StoreName(name))
	if err != nil {
		// Resolve's error names the image already.
		return nil, v1.Descriptor{}, err
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
