package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/layer"
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

// storeImage writes the config and manifest of img to the store (its
// layers are there already) and returns the result.
func storeImage(ctx context.Context, st *store.Store, img v1.Image) (*Result, error) {
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
// config exactly as stored.
func OpenImage(st *store.Store, name string) (v1.Image, v1.Descriptor, error) {
	desc, err := st.Resolve(StoreName(name))
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", name, err)
	}
	img, err := LoadImage(st, desc)
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
	out, err := partial.CompressedToImage(bi)
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
