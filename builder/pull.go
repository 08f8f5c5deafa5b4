package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
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
	var img v1.Image
	if desc.MediaType.IsIndex() {
		img, err = indexImage(desc, *p)
	} else {
		img, err = desc.Image()
	}
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	s, err := b.storePulled(ctx, ref, r.Context(), img)
	if err != nil {
		return nil, err
	}
	// A manifest is one platform's image: never run it as another's, even
	// when an index lists it under the platform asked for.
	if cfg := s.config.ConfigFile; !platformMatches(cfg, platform) {
		if desc.MediaType.IsIndex() {
			return nil, fmt.Errorf("pulling %s: its %s entry is a %s image (its config says so)", ref, platform, configPlatform(cfg))
		}
		return nil, fmt.Errorf("pulling %s: %w", ref, noPlatform(platform, []string{configPlatform(cfg)}))
	}
	return s, nil
}

// indexImage is the index's image for p, naming the platforms it has
// when it has none (ggcr's "no child with platform" names none). An entry
// naming no platform is the platform its config names, as containerd
// reads it (ggcr would take it for linux/amd64); those come last.
func indexImage(desc *remote.Descriptor, p v1.Platform) (v1.Image, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	seen := map[string]bool{}
	saw := func(dp v1.Platform) {
		if s := platformOf(dp); dp.OS != "unknown" && !seen[s] { // attestation manifests; a platform listed twice
			seen[s] = true
			have = append(have, s)
		}
	}
	var bare []v1.Descriptor
	for _, d := range im.Manifests {
		if d.Platform == nil {
			if d.MediaType.IsImage() {
				bare = append(bare, d)
			}
			continue
		}
		if d.Platform.Satisfies(p) {
			return idx.Image(d.Digest)
		}
		saw(*d.Platform)
	}
	for _, d := range bare {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading the config of %s: %w", d.Digest, err)
		}
		dp := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if dp.Satisfies(p) {
			return img, nil
		}
		saw(dp)
	}
	return nil, noPlatform(platformOf(p), have)
}

// errNoPlatform is the cause of noPlatform's errors.
var errNoPlatform = errors.New("no image for the platform")

// noPlatform is the error for a base without an image for platform.
func noPlatform(platform string, have []string) error {
	if len(have) == 0 {
		return &platformError{fmt.Sprintf("no image for %s (its index names no platform)", platform)}
	}
	more := ""
	if len(have) > maxNamed {
		// A hostile index of thousands of entries still gives one short line.
		more = fmt.Sprintf(" and %d more", len(have)-maxNamed)
		have = have[:maxNamed]
	}
	return &platformError{fmt.Sprintf("no image for %s: it has %s%s", platform, strings.Join(have, ", "), more)}
}

// maxNamed bounds the platforms an error names.
const maxNamed = 8

// platformError is errNoPlatform with the platforms a base has.
type platformError struct{ msg string }

func (e *platformError) Error() string { return e.msg }

func (e *platformError) Is(target error) bool { return target == errNoPlatform }

func platformOf(p v1.Platform) string {
	return platformString(specs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
}

func configPlatform(cfg v1.ConfigFile) string {
	return platformString(specs.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
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
	// Its layers not yet local are downloaded straight into their
	// snapshots when prefetched.
	b.prefetch.useBlobs(b.blobs)
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
