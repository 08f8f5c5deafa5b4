package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// importTimeout bounds reading a cache's metadata (manifest, config, a HEAD
// per blob): a registry that hangs costs the build this much, then it
// builds without that cache.
const importTimeout = 60 * time.Second

// cacheFlags are --cache-from and --cache-to, parsed before any work.
type cacheFlags struct {
	from, to []cache.Spec
}

func (o *buildOptions) parseCacheFlags(compression layer.Compression) (cacheFlags, error) {
	var cf cacheFlags
	for _, v := range o.cacheFrom {
		s, err := cache.ParseFrom(v)
		if err != nil {
			return cf, err
		}
		cf.from = append(cf.from, s)
	}
	for _, v := range o.cacheTo {
		s, err := cache.ParseTo(v)
		if err != nil {
			return cf, err
		}
		if s.Compression != "" && s.Compression != string(compression) {
			return cf, fmt.Errorf("--cache-to %q: compression=%s differs from the build's --compression %s: cache entries are the build's own layers, keyed by their compression", s, s.Compression, compression)
		}
		if s.Type == "inline" && !o.push && !o.hasOutput("registry") {
			return cf, fmt.Errorf("--cache-to type=inline: the records ride in the pushed image: add --push (or -o type=registry)")
		}
		if s.Type == "registry" {
			if err := o.notPushedTag(s); err != nil {
				return cf, err
			}
		}
		cf.to = append(cf.to, s)
	}
	if o.checkRepro && (len(cf.from) > 0 || len(cf.to) > 0) {
		return cf, fmt.Errorf("--check-repro builds twice from nothing: drop --cache-from and --cache-to")
	}
	return cf, nil
}

// notPushedTag refuses a cache ref that is a tag the build pushes: the
// cache would replace the image there.
func (o *buildOptions) notPushedTag(s cache.Spec) error {
	reg := registryConfig(o.insecure)
	c, err := reg.ParseRef(s.Ref)
	if err != nil {
		return fmt.Errorf("--cache-to %q: %w", s, err)
	}
	outs, err := o.parseOutputs()
	if err != nil {
		return err
	}
	for _, out := range outs {
		if out.Type != "registry" {
			continue
		}
		for _, n := range out.Names {
			if r, err := reg.ParseRef(n); err == nil && r.Name() == c.Name() {
				return fmt.Errorf("--cache-to %q: %s is also the image's tag: the cache would replace the image (use another tag, say %s:cache)", s, n, c.Context().Name())
			}
		}
	}
	return nil
}

func (o *buildOptions) hasOutput(typ string) bool {
	for _, v := range o.outputs {
		for _, f := range strings.Split(v, ",") {
			if f == "type="+typ {
				return true
			}
		}
	}
	return false
}

// setUp imports the --cache-from caches into opts.Cache, layered under the
// local store, and asks for inline records when --cache-to says so. A
// cache that cannot be read is left out with a warning: the build goes on
// without it.
func (cf cacheFlags) setUp(ctx context.Context, opts *builder.Options, st *store.Store, blobs *registry.Blobs, sink progress.Sink) {
	layered := &cache.Layered{Local: cache.NewLocal(st)}
	p := opts.Graph.Platform
	platform := v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	for _, s := range cf.from {
		id := "import-cache:" + s.Type + ":" + s.Name()
		start := time.Now()
		sink.Event(progress.VertexStarted{ID: id, Name: "importing cache manifest from " + s.Name(), Started: start})
		ictx, cancel := context.WithTimeout(ctx, importTimeout)
		imp, warnings, err := cache.Import(ictx, s, blobs, platform)
		cancel()
		for _, w := range warnings {
			sink.Event(progress.Warning{Message: w})
		}
		if err != nil {
			sink.Event(progress.VertexDone{ID: id, Duration: time.Since(start)})
			sink.Event(progress.Warning{Message: fmt.Sprintf("cache %s not used: %v; building without it", s.Name(), oneLine(err))})
			continue
		}
		sink.Event(progress.VertexDone{ID: id, Duration: time.Since(start)})
		layered.Imports = append(layered.Imports, imp)
	}
	opts.Cache = layered
	opts.CacheMountSeed = func(id string) (*layer.Layer, string) {
		for _, imp := range layered.Imports {
			if l := imp.Mount(id); l != nil {
				return l, imp.Name()
			}
		}
		return nil, ""
	}
	for _, s := range cf.to {
		if s.Type == "inline" {
			opts.InlineCache = true
		}
	}
}

// export writes the build's cache to every --cache-to registry or
// directory. A failure is a warning (buildx's ignore-error=true, the
// default here), or the build's error with ignore-error=false.
func (cf cacheFlags) export(ctx context.Context, res *builder.Result, blobs *registry.Blobs, sink progress.Sink) error {
	for _, s := range cf.to {
		if s.Type == "inline" {
			continue
		}
		err := cache.Export(ctx, s, res.Steps, res.Mounts, blobs, sink)
		if err == nil {
			continue
		}
		err = fmt.Errorf("exporting cache to %s: %w", s.Name(), err)
		if !s.IgnoreError {
			return err
		}
		sink.Event(progress.Warning{Message: oneLine(err).Error() + " (the image is unaffected; the next export writes the cache again)"})
	}
	return nil
}
