package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// base is the state a stage starts from and the State its expansion
// starts with.
func (b *build) base(ctx context.Context, st *dockerfile.Stage) (*state, dockerfile.State, error) {
	switch st.Base.Kind {
	case dockerfile.SourceStage:
		parent, ok := b.builtStage(st.Base.Stage)
		if !ok {
			return nil, dockerfile.State{}, fmt.Errorf("stage %d is not built", st.Base.Stage)
		}
		return parent.state, parent.end, nil
	case dockerfile.SourceImage:
		platform := st.Platform
		if platform == "" {
			platform = platformString(b.opts.Graph.Platform)
		}
		s, err := b.image(ctx, st.Base.Image, platform)
		if err != nil {
			return nil, dockerfile.State{}, err
		}
		s = s.clone()
		if !hasPath(s.config.Config.Env) {
			s.config.Config.Env = append(s.config.Config.Env, "PATH="+dockerfile.DefaultPathEnv)
		}
		return s, dockerfile.ImageState(s.config.Config.Env, s.config.Config.OnBuild), nil
	}
	return b.scratchFor(b.runPlatform(st)), dockerfile.ImageState(nil, nil), nil
}

// runPlatform is the platform a stage's steps run as: its FROM
// --platform, else its parent stage's (FROM another stage inherits it, as
// in BuildKit), else the build's target.
func (b *build) runPlatform(st *dockerfile.Stage) string {
	// Base.Stage is a stage's Index, not its position in Stages (the
	// graph holds only what the target needs).
	for st.Platform == "" && st.Base.Kind == dockerfile.SourceStage {
		parent := b.opts.Graph.Stage(st.Base.Stage)
		if parent == nil || parent == st {
			break
		}
		st = parent
	}
	return b.stagePlatform(st)
}

func hasPath(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return true
		}
	}
	return false
}

// scratch is the empty image: no layers, PATH set as BuildKit sets it.
func (b *build) scratch() *state {
	return b.scratchFor(platformString(b.opts.Graph.Platform))
}

// scratchFor is scratch for platform ("linux/arm64"), a stage's FROM
// --platform=... scratch.
func (b *build) scratchFor(platform string) *state {
	p := b.opts.Graph.Platform
	if pp, err := dockerfile.ParsePlatform(platform); err == nil {
		p = pp
	}
	s := &state{key: "scratch " + platformString(p), base: "scratch " + platformString(p)}
	s.config = ImageConfig{ConfigFile: v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Config:       v1.Config{Env: []string{"PATH=" + dockerfile.DefaultPathEnv}},
		RootFS:       v1.RootFS{Type: "layers"},
	}}
	return s
}

func platformString(p specs.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// image resolves a base, COPY --from or RUN --mount from= image: a
// --build-context of that name first, else the reference (resolveImage).
// Results are kept for the rest of the build.
func (b *build) image(ctx context.Context, ref, platform string) (*state, error) {
	b.pullMu.Lock()
	defer b.pullMu.Unlock()
	if s, ok := b.images[ref+" "+platform]; ok {
		return s, nil
	}
	resolve := func() (*state, error) {
		s, found, err := b.namedContext(ctx, ref, platform)
		if err == nil && !found {
			s, err = b.resolveImage(ctx, ref, platform)
		}
		return s, err
	}
	var s *state
	var err error
	if b.shared != nil {
		// Once for every platform's build: a build-platform stage's base
		// is one image in all, even when its tag moves meanwhile.
		s, err = b.shared.resolved(ref+" "+platform, resolve)
	} else {
		s, err = resolve()
	}
	if err != nil {
		return nil, err
	}
	b.images[ref+" "+platform] = s
	if _, digest, ok := strings.Cut(s.base, "@"); ok && strings.HasPrefix(s.key, "image ") {
		b.sources.add(Source{Kind: "image", Ref: ref, Digest: digest, Platform: platform})
	}
	// Layers already here are extracted ahead of the steps; the others are
	// downloaded only once a step misses (stageRun.prefetched).
	b.prefetch.start(b.localLayers(s.layers))
	return s, nil
}

// resolveImage resolves ref as BuildKit does with docker's containerd
// image store: the registry first, every build, so a name tagged in
// strata's store never silently shadows the registry's image; the store's
// image only when the registry cannot resolve the name (offline, or a name
// only built here), and never with --pull. One line says which was used.
func (b *build) resolveImage(ctx context.Context, ref, platform string) (*state, error) {
	local, lerr := b.localImage(ref, platform)
	// A stored index without the platform is no image here either: the
	// registry's may have it.
	if lerr != nil && !errors.Is(lerr, store.ErrNotFound) && !errors.Is(lerr, errNoPlatform) {
		return nil, lerr
	}
	pctx := ctx
	if lerr == nil && !b.opts.Pull {
		// With the store's image to fall back on, an unreachable registry (a firewall
		// that drops packets) must not hold every build for the transport's timeouts.
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, localFallbackAfter)
		defer cancel()
	}
	s, err := b.pull(pctx, ref, platform)
	if err == nil {
		b.message(fmt.Sprintf("%s: using %s from the registry", ref, s.base))
		return s, nil
	}
	if errors.Is(lerr, errNoPlatform) && !b.opts.Pull && ctx.Err() == nil {
		return nil, fmt.Errorf("%w; %w", lerr, err)
	}
	if b.opts.Pull || ctx.Err() != nil || lerr != nil {
		return nil, err
	}
	if !platformMatches(local.config.ConfigFile, platform) {
		return nil, fmt.Errorf("%w (the store's %s is %s/%s, not %s)", err, ref, local.config.OS, local.config.Architecture, platform)
	}
	b.message(fmt.Sprintf("%s: using %s from the store (the registry did not resolve it: %s)", ref, local.base, firstLine(err.Error())))
	return local, nil
}

// localFallbackAfter bounds the registry's answer for a base the store also holds.
const localFallbackAfter = 15 * time.Second

// platformMatches reports whether cfg is an image for platform (os/arch).
func platformMatches(cfg v1.ConfigFile, platform string) bool {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return false
	}
	return (cfg.OS == "" || cfg.OS == p.OS) && (cfg.Architecture == "" || cfg.Architecture == p.Architecture)
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// message is one line of the build's own in the progress output.
func (b *build) message(text string) {
	b.prog.sink.Event(progress.Message{Text: text})
}

// localImage loads an image tagged in the store.
// A tag naming an index (a multi-platform build's) gives its image for
// platform.
func (b *build) localImage(ref, platform string) (*state, error) {
	st := b.opts.Store
	desc, err := st.Resolve(StoreName(ref))
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		if desc, err = storedChild(st, desc, platform); err != nil {
			return nil, fmt.Errorf("%s in the store: %w", ref, err)
		}
	}
	img, err := loadImage(st, desc, b.blobs)
	if err != nil {
		return nil, fmt.Errorf("loading %s from the store: %w", ref, err)
	}
	return &state{key: "image " + desc.Digest.String(), base: ref + "@" + desc.Digest.String(), config: img.Config, layers: img.Layers}, nil
}

// storedChild is the image for platform of the index desc in the store.
func storedChild(st *store.Store, desc v1.Descriptor, platform string) (v1.Descriptor, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var idx v1.IndexManifest
	if err := readJSON(st, desc.Digest, &idx); err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading index: %w", err)
	}
	var have []string
	var bare []v1.Descriptor
	for _, d := range idx.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		if d.Platform == nil {
			bare = append(bare, d)
			continue
		}
		if d.Platform.OS == "unknown" {
			continue
		}
		if d.Platform.Satisfies(*want) {
			return d, nil
		}
		have = append(have, platformOf(*d.Platform))
	}
	// An entry naming no platform is the one its config names, as for a
	// registry's index (indexImage).
	for _, d := range bare {
		var m v1.Manifest
		var cfg v1.ConfigFile
		if err := readJSON(st, d.Digest, &m); err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading manifest %s: %w", d.Digest, err)
		}
		if err := readJSON(st, m.Config.Digest, &cfg); err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading config %s: %w", m.Config.Digest, err)
		}
		p := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if p.Satisfies(*want) {
			return d, nil
		}
		have = append(have, platformOf(p))
	}
	slices.Sort(have)
	return v1.Descriptor{}, noPlatform(platform, slices.Compact(have))
}

// StoredImage is an image read back from the store.
type StoredImage struct {
	Manifest v1.Manifest
	Config   ImageConfig
	Layers   []*layer.Layer
}

// LoadImage reads the manifest desc, its config and layers from the store.
// A layer whose blob is not local yet (see Store.SetOrigin) is read from
// its origin through reg when something needs its bytes.
func LoadImage(ctx context.Context, st *store.Store, desc v1.Descriptor, reg registry.Config) (*StoredImage, error) {
	return loadImage(st, desc, registry.NewBlobs(ctx, st, reg, nil))
}

func loadImage(st *store.Store, desc v1.Descriptor, blobs *registry.Blobs) (*StoredImage, error) {
	var img StoredImage
	if err := readJSON(st, desc.Digest, &img.Manifest); err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if err := readJSON(st, img.Manifest.Config.Digest, &img.Config); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(img.Config.RootFS.DiffIDs) != len(img.Manifest.Layers) {
		return nil, fmt.Errorf("manifest %s lists %d layers, its config %d", desc.Digest, len(img.Manifest.Layers), len(img.Config.RootFS.DiffIDs))
	}
	for i, d := range img.Manifest.Layers {
		l, err := blobs.Stored(d, img.Config.RootFS.DiffIDs[i])
		if err != nil {
			return nil, err
		}
		img.Layers = append(img.Layers, l)
	}
	return &img, nil
}

// localLayers are the layers of ls whose blobs are in the store.
func (b *build) localLayers(ls []*layer.Layer) []*layer.Layer {
	var out []*layer.Layer
	for _, l := range ls {
		if ok, err := b.opts.Store.HasBlob(l.Descriptor().Digest); err == nil && ok {
			out = append(out, l)
		}
	}
	return out
}

func readJSON(st *store.Store, h v1.Hash, v any) error {
	b, err := readBlob(st, h)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
