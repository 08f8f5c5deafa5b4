package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/internal/sshforward"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// Options configure a build. Everything from the environment
// (SOURCE_DATE_EPOCH, credentials) comes in here.
type Options struct {
	Store *store.Store
	// Cache looks steps up and keeps their results; the Store's own
	// (cache.Local) when nil.
	Cache cache.Cache
	// ExplainCache reports, for every step that misses, what differs from
	// the closest entry the Cache knows (when it is a cache.Explainer).
	ExplainCache bool
	// InlineCache puts the final image's cache records in its config
	// (cache.InlineKey), for --cache-from the image itself.
	InlineCache bool
	// CacheMountSeed is the content a new cache mount id starts with (an
	// imported cache's) and the cache's name, or nil.
	CacheMountSeed func(id string) (*layer.Layer, string)
	Graph          *dockerfile.Graph
	// ExplicitPlatform says Graph.Platform was asked for (--platform): the
	// image is labelled with it whatever its final stage's base is, as
	// BuildKit labels an explicit target's (BuildPlatforms of several
	// always does).
	ExplicitPlatform bool
	// ContextDir is the build context; its .dockerignore applies unless
	// Dockerignore, the Dockerfile's own ignore file, is set.
	ContextDir   string
	Dockerignore *IgnoreFile
	// Runner runs RUN steps; RUN fails when nil.
	Runner      Runner
	NoCache     bool
	Compression layer.Compression
	// Epoch is SOURCE_DATE_EPOCH: the config and history time, and the
	// latest mtime in new layers. Nil means now.
	Epoch   *time.Time
	Network executor.NetworkMode
	// AllowHostNetwork is BuildKit's network.host entitlement: without
	// it a Dockerfile's RUN --network=host is refused before the build, so
	// only the operator can put a step on the host's network.
	AllowHostNetwork bool
	// ExtraHosts (--add-host), Ulimits (--ulimit) and ShmSize (--shm-size)
	// go into every RUN step's executor.Spec, and so into its key.
	ExtraHosts []executor.HostIP
	Ulimits    []executor.Ulimit
	ShmSize    int64
	// Labels are --label values, set on the final image's config.
	Labels map[string]string
	// Pull resolves every base in its registry and never falls back to a
	// name tagged in the Store (--pull).
	Pull bool
	// NoCacheStages are --no-cache-filter's stage names: their steps run
	// whatever the cache holds (noCacheStage).
	NoCacheStages []string
	// Contexts are the --build-context values by name (ParseBuildContext).
	Contexts map[string]NamedContext
	// Annotations are --annotation values (ParseAnnotation): the manifest's
	// go into the image; the others are its outputs' (Output.Annotations).
	Annotations []Annotation
	// Registry says how bases are pulled.
	Registry registry.Config
	// Blobs reads lazy layers (bases, imported caches) into the Store; one
	// of Registry's own when nil. Share it with the cache imports so a
	// blob is downloaded once.
	Blobs *registry.Blobs
	// HTTPClient fetches ADD URLs; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Progress receives the build's events (package progress): steps
	// started, their output, cached, done or failed; the Dockerfile's
	// warnings. Discarded when nil. Rendering them is the caller's.
	Progress progress.Sink
	// Secrets are the --secret values by id, for RUN --mount=type=secret;
	// SSH the --ssh agents by id, for RUN --mount=type=ssh (secrets.go).
	Secrets map[string][]byte
	SSH     map[string]*sshforward.Source
	// Owners gives files in image trees their image owners: owners.Host
	// (the default) chowns, owners.Recorded records them for a build that
	// cannot (rootless without an id mapping).
	Owners owners.Policy

	// afterKey, for tests, runs once a step's key is known and before the
	// step runs: it can change the context between the two.
	afterKey func(dockerfile.Step)
}

// Result is a built image, its config and manifest stored in the Store.
type Result struct {
	Image v1.Image
	// Descriptor is the manifest's: its digest is the image ID strata
	// reports (--iidfile), like docker with the containerd image store.
	Descriptor v1.Descriptor
	// Steps are every step of every stage built, in stage order, each
	// once, marked when in the final image's chain: what a cache export
	// writes. Mounts are the cache mounts the build used.
	Steps  []cache.Step
	Mounts []cache.MountDir
	// Sources are the base images, ADD URLs and git repositories the
	// build read, sorted: provenance's materials.
	Sources []Source
}

// build is one run of Build.
type build struct {
	opts Options
	// shared is what the platform builds of one BuildPlatforms share;
	// nil for Build.
	shared *siblings
	// slots bound the steps doing filesystem work at once (slot).
	slots   chan struct{}
	context *contextFS
	tmp     string
	prog    *reporter
	// mu guards stages; stages of one level are built concurrently.
	mu     sync.Mutex
	stages map[int]*built
	// pullMu serializes pulls and flattening, and guards images and flat.
	pullMu sync.Mutex
	images map[string]*state
	flat   map[string]string // RUN --mount sources: state key -> flattened tree
	// sockDir holds the agent sockets of RUN --mount=type=ssh (socketDir).
	sockOnce sync.Once
	sockDir  string
	sockErr  error
	// prefetch extracts resolved bases' snapshots in the background.
	prefetch *prefetcher
	// blobs makes the layers of pulled bases lazy: downloaded on first read.
	blobs *registry.Blobs
	cache cache.Cache
	// mounts are the cache mounts the build used, by id.
	mountsMu sync.Mutex
	mounts   map[string]string
	// sources are what the build fetched (Result.Sources).
	sources sourceLog
}

// built is a finished stage.
type built struct {
	state *state
	end   dockerfile.State
}

// Build builds opts.Graph's target and stores the image's blobs.
func Build(ctx context.Context, opts Options) (*Result, error) {
	return buildOne(ctx, opts, nil)
}

// buildOne is Build, as one of the platform builds of BuildPlatforms when
// sh is not nil.
func buildOne(ctx context.Context, opts Options, sh *siblings) (*Result, error) {
	if opts.Compression == "" {
		opts.Compression = layer.Gzip
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	// Before anything can report: no event carries a secret's value.
	opts.Progress = newRedactSink(opts.Progress, opts.Secrets)
	b := &build{opts: opts, shared: sh, prog: newReporter(opts.Progress), stages: map[int]*built{}, images: map[string]*state{}, flat: map[string]string{}, mounts: map[string]string{}}
	if b.cache = opts.Cache; b.cache == nil {
		b.cache = cache.NewLocal(opts.Store)
	}
	b.slots = make(chan struct{}, runtime.NumCPU())
	if sh != nil {
		// One numbering of vertexes, and each lint warning once, for all
		// the platforms' builds.
		b.prog = sh.prog
		b.slots = sh.slots
	}
	b.prog.warnings(opts.Graph)
	for _, n := range opts.NoCacheStages {
		if !slices.ContainsFunc(opts.Graph.Stages, func(st *dockerfile.Stage) bool { return strings.EqualFold(st.Name, n) }) {
			// BuildKit ignores it silently; a typo would leave the cache in use unnoticed.
			b.prog.sink.Event(progress.Warning{Message: fmt.Sprintf("--no-cache-filter %s: the build has no stage of that name", n)})
		}
	}
	if err := b.preflight(); err != nil {
		return nil, err
	}
	if err := checkAnnotations(opts.Annotations, b.platforms()); err != nil {
		return nil, err
	}
	var err error
	if b.context, err = openContextWith(opts.ContextDir, opts.Dockerignore); err != nil {
		return nil, err
	}
	b.context.sums = loadStatCache(opts.Store, b.context.dir)
	work, err := opts.Store.NewWorkDir()
	if err != nil {
		return nil, err
	}
	defer work.Remove()
	b.tmp = work.Path()
	defer func() {
		if b.sockDir != "" {
			os.RemoveAll(b.sockDir)
		}
	}()
	pctx, cancel := context.WithCancel(ctx)
	b.prefetch = newPrefetcher(pctx, opts.Store, layer.ExtractOptions{Owners: opts.Owners})
	// The caller's context: an output written after Build returns may
	// still download a layer.
	if b.blobs = opts.Blobs; b.blobs == nil {
		b.blobs = registry.NewBlobs(ctx, opts.Store, opts.Registry, b.prog.sink)
	}
	// A finished or failed build leaves no extraction running.
	defer b.prefetch.stop()
	defer cancel()
	for _, level := range opts.Graph.Levels() {
		if err := b.level(ctx, level); err != nil {
			return nil, err
		}
	}
	if err := b.context.sums.save(opts.Store, b.context.dir); err != nil {
		return nil, fmt.Errorf("saving the context's stat cache: %w", err)
	}
	target, _ := b.builtStage(opts.Graph.Target.Index)
	steps := b.steps(target.state)
	res, err := b.finish(ctx, target.state, steps)
	if err != nil {
		return nil, err
	}
	res.Steps, res.Mounts, res.Sources = steps, b.usedMounts(), b.sources.list()
	return res, nil
}

// steps are the steps of every stage built, each once, in stage order,
// marked when the target's chain holds them.
func (b *build) steps(target *state) []cache.Step {
	inTarget := map[string]bool{}
	for _, s := range target.steps {
		inTarget[s.Key] = true
	}
	var out []cache.Step
	seen := map[string]bool{}
	for _, st := range b.opts.Graph.Stages {
		done, ok := b.builtStage(st.Index)
		if !ok {
			continue
		}
		for _, s := range done.state.steps {
			if seen[s.Key] {
				continue
			}
			seen[s.Key] = true
			s.InTarget = inTarget[s.Key]
			out = append(out, s)
		}
	}
	return out
}

// usedMounts are the cache mounts the build used, sorted by id.
func (b *build) usedMounts() []cache.MountDir {
	b.mountsMu.Lock()
	defer b.mountsMu.Unlock()
	var out []cache.MountDir
	for _, id := range slices.Sorted(maps.Keys(b.mounts)) {
		out = append(out, cache.MountDir{ID: id, Dir: b.mounts[id], Owners: b.opts.Owners})
	}
	return out
}

// networkChecker is a Runner that can tell before the build whether steps
// on a network mode can run (the default network needs a helper program).
type networkChecker interface {
	CheckNetwork(executor.NetworkMode) error
}

// preflight refuses, before any work, a build whose RUN steps cannot run
// here or ask for what the operator did not allow, naming the first such
// step.
func (b *build) preflight() error {
	if err := b.checkEmulation(); err != nil {
		return err
	}
	nc, _ := b.opts.Runner.(networkChecker)
	for _, st := range b.opts.Graph.Stages {
		for _, step := range st.Steps {
			c, ok := step.Command.(*instructions.RunCommand)
			if !ok {
				continue
			}
			if err := b.checkNetwork(c); err != nil {
				return stepError(b.opts.Graph.File, step.Location.Line, err)
			}
			if err := b.checkSecrets(step); err != nil {
				return stepError(b.opts.Graph.File, step.Location.Line, err)
			}
			if nc == nil {
				continue
			}
			if err := nc.CheckNetwork(b.network(c)); err != nil {
				return stepError(b.opts.Graph.File, step.Location.Line, err)
			}
		}
	}
	return nil
}

// errHostNetwork refuses RUN --network=host without the entitlement.
var errHostNetwork = errors.New("RUN --network=host needs the network.host entitlement: pass --allow network.host (the step would see the host's interfaces and reach its loopback services)")

// checkNetwork refuses a RUN --network=host the operator did not allow; a
// build-wide --network=host is the operator's own choice.
func (b *build) checkNetwork(c *instructions.RunCommand) error {
	if instructions.GetNetwork(c) == instructions.NetworkHost && !b.opts.AllowHostNetwork && b.opts.Network != executor.NetworkHost {
		return errHostNetwork
	}
	return nil
}

// level builds stages that do not depend on each other concurrently, as
// BuildKit does. The first failure cancels the others and is returned.
func (b *build) level(ctx context.Context, stages []*dockerfile.Stage) error {
	if stages = b.toBuild(stages); len(stages) == 0 {
		return nil
	}
	if len(stages) == 1 {
		return b.buildStage(ctx, stages[0])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(stages))
	var wg sync.WaitGroup
	for i, st := range stages {
		wg.Go(func() {
			if errs[i] = b.buildStage(ctx, st); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	return firstCause(errs)
}

// firstCause is the first error that is not a sibling's cancellation.
func firstCause(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func (b *build) builtStage(index int) (*built, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.stages[index]
	return s, ok
}

func (b *build) setBuilt(index int, s *built) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stages[index] = s
}

// finish applies --label, sets the created time, adds the inline cache
// records when asked, and stores the image.
func (b *build) finish(ctx context.Context, s *state, steps []cache.Step) (*Result, error) {
	s = s.clone()
	for k, v := range b.opts.Labels {
		s.config.Config.Labels = setLabel(s.config.Config.Labels, k, v)
	}
	s.config.Created = b.createdTime(s)
	if b.shared != nil || b.opts.ExplicitPlatform {
		// The image is the target's, as BuildKit labels an explicit
		// --platform's: a final stage FROM a build-platform stage (or FROM
		// --platform=other) must not be listed as the host's image.
		labelPlatform(&s.config.ConfigFile, b.opts.Graph.Platform)
	}
	var extra map[string]json.RawMessage
	if b.opts.InlineCache {
		var ds []v1.Descriptor
		for _, l := range s.layers {
			ds = append(ds, l.Descriptor())
		}
		records, err := cache.Inline(steps, ds)
		if err != nil {
			return nil, err
		}
		extra = map[string]json.RawMessage{cache.InlineKey: records}
	}
	img, err := assemble(s, extra, annotationsFor(b.opts.Annotations, AnnotationManifest, b.opts.Graph.Platform))
	if err != nil {
		return nil, err
	}
	return storeImage(ctx, b.opts.Store, img, s.layers)
}

// labelPlatform sets cfg's platform to p; the variant, as BuildKit does,
// only when p has one or names another OS or architecture.
func labelPlatform(cfg *v1.ConfigFile, p specs.Platform) {
	same := cfg.OS == p.OS && cfg.Architecture == p.Architecture
	cfg.OS, cfg.Architecture = p.OS, p.Architecture
	if p.Variant != "" || !same {
		cfg.Variant = p.Variant
	}
}

// createdTime is SOURCE_DATE_EPOCH, else the newest history entry's time,
// so a build served from the cache gives the same config again.
func (b *build) createdTime(s *state) v1.Time {
	if b.opts.Epoch != nil {
		return v1.Time{Time: b.opts.Epoch.UTC()}
	}
	var t time.Time
	for _, h := range s.config.History {
		if h.Created.After(t) {
			t = h.Created.Time
		}
	}
	if t.IsZero() {
		t = time.Now()
	}
	return v1.Time{Time: t.UTC()}
}

// now is the time of a new history entry.
func (b *build) now() time.Time {
	if b.opts.Epoch != nil {
		return b.opts.Epoch.UTC()
	}
	return time.Now().UTC().Truncate(time.Second)
}
