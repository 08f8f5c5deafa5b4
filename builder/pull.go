package builder

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/layer"
)

// ParseRef parses an image reference, marking localhost, 127.0.0.1 and
// the insecure registries as plain HTTP.
func (r Registry) ParseRef(ref string) (name.Reference, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %s: %w", ref, err)
	}
	if !r.isInsecure(parsed.Context().RegistryStr()) {
		return parsed, nil
	}
	return name.ParseReference(ref, name.Insecure)
}

func (r Registry) isInsecure(host string) bool {
	h := host
	if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	return h == "localhost" || h == "127.0.0.1" || h == "[::1]" || slices.Contains(r.Insecure, host)
}

// RemoteOptions are go-containerregistry's options for this registry
// configuration.
func (r Registry) RemoteOptions(ctx context.Context) []remote.Option {
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	} else {
		opts = append(opts, remote.WithTransport(http.DefaultTransport))
	}
	return opts
}

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
	return b.storePulled(ctx, ref, img)
}

func (b *build) storePulled(ctx context.Context, ref string, img v1.Image) (*state, error) {
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
	s := &state{key: "image " + digest.String(), config: *cfg}
	for i, d := range m.Layers {
		l, err := b.storeLayer(ctx, img, d, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return nil, fmt.Errorf("pulling %s: layer %s: %w", ref, d.Digest, err)
		}
		s.layers = append(s.layers, l)
		// Extracting this layer overlaps with downloading the next.
		b.prefetch.start([]*layer.Layer{l})
	}
	return s, nil
}

// pulledConfig reads the config from the store, fetching and storing it
// first when the store lacks it: a rebuild downloads no blob at all.
func (b *build) pulledConfig(ctx context.Context, img v1.Image, h v1.Hash) (*v1.ConfigFile, error) {
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
	var cfg v1.ConfigFile
	if err := readJSON(st, h, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (b *build) storeLayer(ctx context.Context, img v1.Image, d v1.Descriptor, diffID v1.Hash) (*layer.Layer, error) {
	st := b.opts.Store
	if ok, err := st.HasBlob(d.Digest); err != nil || !ok {
		if err != nil {
			return nil, err
		}
		rl, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, err
		}
		rc, err := rl.Compressed()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		if _, _, err := st.PutBlob(ctx, rc, d.Digest); err != nil {
			return nil, err
		}
	}
	// The same bytes under the OCI media type: the built manifest is OCI.
	d.MediaType = ociLayerType(d.MediaType)
	return st.Layer(d, diffID)
}
