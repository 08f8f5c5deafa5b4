package builder

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pull resolves ref in its registry (the tag is checked every build, as
// docker build does; it is one small request) and stores the layers the
// store lacks, streamed and verified against their digests.
func (b *build) pull(ctx context.Context, ref, platform string) (*state, error) {
	r, err := b.opts.Registry.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	opts := append(b.opts.Registry.RemoteOptions(ctx), remote.WithPlatform(*p))
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return b.storePulled(ctx, ref, r.Context(), img)
}

// storePulled keeps the pulled image's config in the store; its layers are
// lazy (lazyBlobs): downloaded when a step or an output first reads them.
func (b *build) storePulled(ctx context.Context, ref string, repo name.Repository, img v1.Image) (*state, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	cfg, err := b.pulledConfig(ctx, img, m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: reading config: %w", ref, err)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("pulling %s: manifest and config disagree on the number of layers", ref)
	}
	s := &state{key: "image " + digest.String(), base: ref + "@" + digest.String(), config: *cfg}
	for i, d := range m.Layers {
		l, err := b.blobs.Layer(d, cfg.RootFS.DiffIDs[i], repo)
		if err != nil {
			return nil, fmt.Errorf("pulling %s: %w", ref, err)
		}
		s.layers = append(s.layers, l)
	}
	return s, nil
}

// pulledConfig reads the config from the store, fetching and storing it
// first when the store lacks it: a rebuild downloads no blob at all.
func (b *build) pulledConfig(ctx context.Context, img v1.Image, h v1.Hash) (*ImageConfig, error) {
	st := b.opts.Store
	if ok, err := st.HasBlob(h); err != nil || !ok {
		raw, err := img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		if _, _, err := st.PutBlob(ctx, bytes.NewReader(raw), h); err != nil {
			return nil, err
		}
	}
	var cfg ImageConfig
	if err := readJSON(st, h, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}
