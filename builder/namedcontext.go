package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/layer"
)

// NamedContext is a --build-context value: exactly one of a local
// directory, an image reference or an OCI layout.
type NamedContext struct {
	// Dir is a local directory; its own .dockerignore applies.
	Dir string
	// Image is a docker-image:// reference, resolved as a base is.
	Image string
	// Layout is an oci-layout:// directory and LayoutDigest the manifest
	// (or index) in it, resolved from its tag when parsed.
	Layout       string
	LayoutDigest v1.Hash
}

// ParseBuildContext reads a --build-context NAME=VALUE as buildx does:
// VALUE is docker-image://REF, oci-layout://PATH[:TAG][@sha256:...] or a
// local directory. Git and HTTP sources and bake's target: are refused.
func ParseBuildContext(kv string) (string, NamedContext, error) {
	fail := func(format string, a ...any) (string, NamedContext, error) {
		return "", NamedContext{}, fmt.Errorf("--build-context %q: %s", kv, fmt.Sprintf(format, a...))
	}
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" || v == "" {
		return fail("want NAME=VALUE")
	}
	if _, err := name.ParseReference(k); err != nil {
		return fail("invalid context name %q: %v", k, err)
	}
	switch {
	case strings.HasPrefix(v, "docker-image://"):
		ref := strings.TrimPrefix(v, "docker-image://")
		if _, err := name.ParseReference(ref); err != nil {
			return fail("%v", err)
		}
		return k, NamedContext{Image: ref}, nil
	case strings.HasPrefix(v, "oci-layout://"):
		nc, err := parseLayoutContext(strings.TrimPrefix(v, "oci-layout://"))
		if err != nil {
			return fail("%v", err)
		}
		return k, nc, nil
	case strings.HasPrefix(v, "target:"):
		return fail("target: contexts are bake's; docker build takes a directory, docker-image:// or oci-layout://")
	case strings.Contains(v, "://") || strings.HasPrefix(v, "git@"):
		return fail("only local directories, docker-image:// and oci-layout:// contexts are supported")
	}
	fi, err := os.Stat(v)
	if err != nil {
		return fail("%v", err)
	}
	if !fi.IsDir() {
		return fail("%s is not a directory", v)
	}
	dir, err := filepath.Abs(v)
	if err != nil {
		return fail("%v", err)
	}
	return k, NamedContext{Dir: dir}, nil
}

// parseLayoutContext reads PATH[:TAG][@sha256:...] as buildx does (the
// tag defaults to latest; a digest wins over the tag) and resolves the tag
// in the layout's index.json now, so a bad value fails before the build.
func parseLayoutContext(v string) (NamedContext, error) {
	dir, dgst, hasDigest := strings.Cut(v, "@")
	dir, tag, hasTag := strings.Cut(dir, ":")
	if !hasTag {
		tag = "latest"
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return NamedContext{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	nc := NamedContext{Layout: dir}
	if hasDigest {
		if nc.LayoutDigest, err = v1.NewHash(dgst); err != nil {
			return NamedContext{}, fmt.Errorf("digest %q: %w", dgst, err)
		}
		if _, err := p.Bytes(nc.LayoutDigest); err != nil {
			return NamedContext{}, fmt.Errorf("OCI layout %s has no blob %s", dir, dgst)
		}
		return nc, nil
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return NamedContext{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return NamedContext{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	for _, d := range m.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == tag {
			nc.LayoutDigest = d.Digest
			return nc, nil
		}
	}
	return NamedContext{}, fmt.Errorf("OCI layout %s has no image tagged %q", dir, tag)
}

// contextName is the name BuildKit looks a --build-context up by for a
// FROM, COPY --from or RUN --mount from= reference: the familiar form,
// without ":latest" ("docker.io/library/alpine:latest" is "alpine").
func contextName(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	repo := r.Context().RepositoryStr()
	if reg := r.Context().RegistryStr(); reg != name.DefaultRegistry {
		repo = reg + "/" + repo
	} else {
		repo = strings.TrimPrefix(repo, "library/")
	}
	switch id := r.Identifier(); {
	case strings.HasPrefix(id, "sha256:"):
		return repo + "@" + id
	case id != "latest":
		return repo + ":" + id
	}
	return repo
}

// lookupContext finds the --build-context for ref, the platform-qualified
// name ("alpine::linux/arm64") first, as BuildKit does.
func (b *build) lookupContext(ref, platform string) (string, NamedContext, bool) {
	n := contextName(ref)
	if n == "scratch" || n == "context" {
		return "", NamedContext{}, false
	}
	for _, k := range []string{n + "::" + platform, n} {
		if nc, ok := b.opts.Contexts[k]; ok {
			return k, nc, true
		}
	}
	return "", NamedContext{}, false
}

// namedContext is the state of the --build-context that replaces ref, if
// any. Its key covers its content: an image's manifest digest, a
// directory's files hashed as the build context's are.
func (b *build) namedContext(ctx context.Context, ref, platform string) (*state, bool, error) {
	k, nc, ok := b.lookupContext(ref, platform)
	if !ok {
		return nil, false, nil
	}
	var s *state
	var err error
	switch {
	case nc.Image != "":
		s, err = b.resolveImage(ctx, nc.Image, platform)
	case nc.Layout != "":
		s, err = b.layoutImage(ctx, nc, platform)
	default:
		s, err = b.dirContext(ctx, nc.Dir)
	}
	if err != nil {
		return nil, true, fmt.Errorf("--build-context %s: %w", k, err)
	}
	b.message(fmt.Sprintf("%s: using --build-context %s (%s)", ref, k, s.base))
	return s, true, nil
}

// layoutImage copies the image nc names (for an index, platform's
// manifest) from its OCI layout into the store and loads it from there.
func (b *build) layoutImage(ctx context.Context, nc NamedContext, platform string) (*state, error) {
	p, err := layout.FromPath(nc.Layout)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", nc.Layout, err)
	}
	h, err := layoutManifest(p, nc.LayoutDigest, platform)
	if err != nil {
		return nil, err
	}
	raw, err := p.Bytes(h)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", nc.Layout, err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: manifest %s: %w", nc.Layout, h, err)
	}
	st := b.opts.Store
	// Every blob is verified against its digest as the store takes it.
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if ok, err := st.HasBlob(d.Digest); err == nil && ok {
			continue
		}
		rc, err := p.Blob(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading OCI layout %s: %w", nc.Layout, err)
		}
		_, _, err = st.PutBlob(ctx, rc, d.Digest)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("copying %s from OCI layout %s: %w", d.Digest, nc.Layout, err)
		}
	}
	if _, _, err := st.PutBlob(ctx, strings.NewReader(string(raw)), h); err != nil {
		return nil, fmt.Errorf("copying manifest %s from OCI layout %s: %w", h, nc.Layout, err)
	}
	s := &state{key: "image " + h.String(), base: "oci-layout://" + nc.Layout + "@" + h.String()}
	if err := readJSON(st, m.Config.Digest, &s.config); err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: config: %w", nc.Layout, err)
	}
	// As for a pulled base: one platform's image is never another's.
	if !platformMatches(s.config.ConfigFile, platform) {
		return nil, fmt.Errorf("OCI layout %s: %w", nc.Layout, noPlatform(platform, []string{configPlatform(s.config.ConfigFile)}))
	}
	if len(s.config.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("OCI layout %s: manifest %s lists %d layers, its config %d", nc.Layout, h, len(m.Layers), len(s.config.RootFS.DiffIDs))
	}
	for i, d := range m.Layers {
		// Docker's media types as their OCI equals, as for a pulled base.
		d.MediaType = ociLayerType(d.MediaType)
		if _, err := layer.CompressionOf(d.MediaType); err != nil {
			return nil, fmt.Errorf("OCI layout %s: layer %s: %w", nc.Layout, d.Digest, err)
		}
		l, err := st.Layer(d, s.config.RootFS.DiffIDs[i])
		if err != nil {
			return nil, err
		}
		s.layers = append(s.layers, l)
	}
	return s, nil
}

// layoutManifest is h itself when it is an image manifest, or the
// manifest for platform when h is an index.
func layoutManifest(p layout.Path, h v1.Hash, platform string) (v1.Hash, error) {
	raw, err := p.Bytes(h)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("OCI layout %s has no blob %s", p, h)
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return v1.Hash{}, fmt.Errorf("OCI layout %s: %s: %w", p, h, err)
	}
	if !probe.MediaType.IsIndex() && probe.Manifests == nil {
		return h, nil
	}
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return v1.Hash{}, err
	}
	for _, d := range probe.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(*want) {
			if d.MediaType.IsIndex() {
				return layoutManifest(p, d.Digest, platform)
			}
			return d.Digest, nil
		}
	}
	return v1.Hash{}, fmt.Errorf("OCI layout %s: index %s has no image for %s", p, h, platform)
}

// dirContext is a local directory as BuildKit's local named context: an
// image with no config but PATH whose one layer is the directory's files
// (less its .dockerignore's), owned 0:0, written by COPY's own writer.
// The key covers every file as a COPY from the build context's would.
func (b *build) dirContext(ctx context.Context, dir string) (*state, error) {
	cfs, err := openContext(dir)
	if err != nil {
		return nil, err
	}
	defer cfs.close()
	s := b.scratch()
	op := &copyOp{name: "COPY", sources: []string{"."}, dest: "/", from: cfs, context: true, owners: b.opts.Owners, dl: downloader{client: b.opts.HTTPClient, dir: b.tmp}}
	files, err := op.plan(ctx)
	if err != nil {
		return nil, err
	}
	if err := op.describeFiles(files); err != nil {
		return nil, err
	}
	content, err := copyKey(op, files, "")
	if err != nil {
		return nil, err
	}
	in := keyInput{Parent: s.key, Platform: platformString(b.opts.Graph.Platform), Kind: "build-context", Command: "COPY . /", Layer: b.layerKey(), Copy: content}
	key, err := in.key()
	if err != nil {
		return nil, err
	}
	s.base = "directory " + dir
	entry, err := b.cached(ctx, nil, key)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		l, err := b.copy(ctx, s, dockerfile.Step{}, &copyPlan{op: op, files: files, content: content})
		if err != nil {
			return nil, err
		}
		entry = &cache.Entry{Layer: l}
		if err := b.cache.Put(ctx, key, entry); err != nil {
			return nil, err
		}
	}
	if entry.Layer != nil {
		s.layers = append(s.layers, entry.Layer)
	}
	s.key, s.prev = key, key
	return s, nil
}

// buildStage builds st, or, when a --build-context has its name, takes
// the context for the whole stage as BuildKit does: the stage's own base
// and steps are not built.
func (b *build) buildStage(ctx context.Context, st *dockerfile.Stage) error {
	if _, _, ok := b.replacedStage(st); !ok {
		return b.stage(ctx, st)
	}
	b.pullMu.Lock()
	s, _, err := b.namedContext(ctx, st.Name, b.stagePlatform(st))
	b.pullMu.Unlock()
	if err != nil {
		return stepError(b.opts.Graph.File, st.Location.Line, interruption(err))
	}
	b.prefetch.start(b.localLayers(s.layers))
	s = s.clone()
	b.setBuilt(st.Index, &built{state: s, end: dockerfile.ImageState(s.config.Config.Env, s.config.Config.OnBuild)})
	return nil
}

func (b *build) stagePlatform(st *dockerfile.Stage) string {
	if st.Platform != "" {
		return st.Platform
	}
	return platformString(b.opts.Graph.Platform)
}

// replacedStage is the --build-context named as st is, if any.
func (b *build) replacedStage(st *dockerfile.Stage) (string, NamedContext, bool) {
	if st.Name == "" || len(b.opts.Contexts) == 0 {
		return "", NamedContext{}, false
	}
	return b.lookupContext(st.Name, b.stagePlatform(st))
}

// toBuild drops from stages those only a replaced stage needed: the
// target's dependencies are followed through every stage but those a
// --build-context replaces.
func (b *build) toBuild(stages []*dockerfile.Stage) []*dockerfile.Stage {
	if len(b.opts.Contexts) == 0 {
		return stages
	}
	needed := map[int]bool{}
	var visit func(st *dockerfile.Stage)
	visit = func(st *dockerfile.Stage) {
		if st == nil || needed[st.Index] {
			return
		}
		needed[st.Index] = true
		if _, _, ok := b.replacedStage(st); ok {
			return
		}
		for _, d := range st.Deps {
			visit(b.opts.Graph.Stage(d))
		}
	}
	visit(b.opts.Graph.Target)
	var out []*dockerfile.Stage
	for _, st := range stages {
		if needed[st.Index] {
			out = append(out, st)
		}
	}
	return out
}

// noCacheStage reports whether --no-cache-filter names st (BuildKit
// compares the stage's name, ignoring case; unnamed stages never match).
func (b *build) noCacheStage(st *dockerfile.Stage) bool {
	if st == nil || st.Name == "" {
		return false
	}
	for _, n := range b.opts.NoCacheStages {
		if strings.EqualFold(n, st.Name) {
			return true
		}
	}
	return false
}

// rerunKey is the key a step of a --no-cache-filter stage is kept under
// and chains on: its own key bound to the layer it produced this time. A
// step run again may give other files than the entry under key holds, so
// neither that entry nor the steps keyed after it may stand for the new
// result, in this build or a later one.
func rerunKey(key string, l *layer.Layer) (string, error) {
	in := struct{ Key, Rerun string }{Key: key}
	if l != nil {
		d, err := l.DiffID()
		if err != nil {
			return "", err
		}
		in.Rerun = d.String()
	}
	return digestJSON(in)
}
