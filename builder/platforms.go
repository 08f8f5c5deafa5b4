package builder

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
)

// BuildPlatforms builds one Dockerfile for several platforms (docker
// build --platform a,b): opts[i].Graph is the Dockerfile parsed for
// platform i. The builds run concurrently; a step whose key another of
// them already ran (a FROM --platform=$BUILDPLATFORM stage, the same in
// every build) runs once and is shared, even with NoCache, as BuildKit
// solves such a vertex once. The steps doing work at any moment are at
// most the CPU count. The first failure cancels the others. Results come
// in opts' order.
func BuildPlatforms(ctx context.Context, opts []Options) ([]*Result, error) {
	if len(opts) == 0 {
		return nil, fmt.Errorf("no platform to build")
	}
	if len(opts) == 1 {
		res, err := Build(ctx, opts[0])
		if err != nil {
			return nil, err
		}
		return []*Result{res}, nil
	}
	// Every build gets the same secrets (they are flags), so one redacting sink serves all.
	sh := &siblings{
		prog:   newReporter(newRedactSink(opts[0].Progress, opts[0].Secrets)),
		locks:  map[string]*stepLock{},
		done:   map[string]doneStep{},
		slots:  make(chan struct{}, runtime.NumCPU()),
		seen:   map[string]bool{},
		images: map[string]*resolution{},
	}
	sh.prog.shared = sh
	work, err := opts[0].Store.NewWorkDir()
	if err != nil {
		return nil, err
	}
	defer work.Remove()
	sh.downloads = &downloads{dir: work.Path(), m: map[string]*download{}, gits: map[string]*gitResolution{}}
	opts = slices.Clone(opts)
	for i, o := range opts {
		sh.targets = append(sh.targets, o.Graph.Platform)
		if o.Blobs == nil {
			// The caller's context, as Build's: the images' lazy layers are
			// read after BuildPlatforms returns and cancels its own.
			opts[i].Blobs = registry.NewBlobs(ctx, o.Store, o.Registry, sh.prog.sink)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]*Result, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Go(func() {
			if results[i], errs[i] = buildOne(ctx, o, sh); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := firstCause(errs); err != nil {
		return nil, err
	}
	return results, nil
}

// siblings is what the platform builds of one BuildPlatforms share.
type siblings struct {
	prog    *reporter
	targets []specs.Platform

	mu sync.Mutex
	// locks hold a step key while one build looks it up and runs it, so
	// a sibling with the same step waits and then takes its result.
	locks map[string]*stepLock
	// done are the steps run in this invocation, by the key looked up.
	done map[string]doneStep
	// seen are the lint warnings already reported.
	seen map[string]bool
	// slots bound the steps doing work at once to the CPU count.
	slots chan struct{}
	// downloads are the ADD URLs fetched, once for every platform.
	downloads *downloads
	// images are the bases (and COPY --from images) resolved, by
	// reference and platform, once for every platform's build.
	images map[string]*resolution
}

type resolution struct {
	mu   sync.Mutex
	done bool
	s    *state
	err  error
}

// resolved is resolve's state for key, run by the first build asking; an
// interrupted resolution is tried again by the next.
func (sh *siblings) resolved(key string, resolve func() (*state, error)) (*state, error) {
	sh.mu.Lock()
	r := sh.images[key]
	if r == nil {
		r = &resolution{}
		sh.images[key] = r
	}
	sh.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return r.s, r.err
	}
	s, err := resolve()
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		r.done, r.s, r.err = true, s, err
	}
	return s, err
}

type stepLock struct {
	mu   sync.Mutex
	refs int
}

// lock takes the step key; the returned function gives it back.
func (sh *siblings) lock(key string) func() {
	sh.mu.Lock()
	l := sh.locks[key]
	if l == nil {
		l = &stepLock{}
		sh.locks[key] = l
	}
	l.refs++
	sh.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		sh.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(sh.locks, key)
		}
		sh.mu.Unlock()
	}
}

// doneStep is a step a sibling ran: its result and the key it was kept
// under, which a --no-cache-filter rerun binds to the new layer (rerunKey),
// or its failure.
type doneStep struct {
	entry *cache.Entry
	key   string
	err   error
}

// result is the entry a sibling made for key in this invocation and the
// key the step chains on, or the sibling's failure to make it, or nil.
func (sh *siblings) result(key string) (*cache.Entry, string, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.done[key]
	return d.entry, d.key, d.err
}

// failed records a step that failed: the siblings waiting for it stop
// with its error rather than run it again while the build is cancelled.
// An interruption is not the step's own failure and is not recorded.
func (sh *siblings) failed(key string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.done[key] = doneStep{err: err}
}

func (sh *siblings) remember(lookup, kept string, e *cache.Entry) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.done[lookup] = doneStep{entry: e, key: kept}
}

// slot waits for a free CPU slot, shared by every stage and platform of
// the invocation; the returned function frees it. Independent stages run
// concurrently, but no more of their steps work at once than there are
// CPUs: more would only share the cores, each holding its sandbox and
// layer writer's buffers (peak memory grew with the stage count).
func (b *build) slot(ctx context.Context) (func(), error) {
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// firstWarning reports whether a warning is new to this invocation: the
// platforms' graphs mostly warn alike.
func (sh *siblings) firstWarning(w progress.Warning) bool {
	k := fmt.Sprintf("%s\x00%d\x00%s\x00%s", w.File, w.Line, w.Rule, w.Message)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.seen[k] {
		return false
	}
	sh.seen[k] = true
	return true
}

// platforms are the platforms this invocation builds.
func (b *build) platforms() []specs.Platform {
	if b.shared != nil {
		return b.shared.targets
	}
	return []specs.Platform{b.opts.Graph.Platform}
}

// stagePrefix is the platform BuildKit shows before a stage's steps when
// several platforms are built: the stage's own (FROM --platform), else
// the target's.
func (b *build) stagePrefix(st *dockerfile.Stage) string {
	if b.shared == nil {
		return ""
	}
	return b.runPlatform(st) + " "
}

// downloader fetches the ADD URLs of a step: into the build's own
// directory, or once for every platform of a BuildPlatforms.
func (b *build) downloader() downloader {
	d := downloader{client: b.opts.HTTPClient, dir: b.tmp, sources: &b.sources}
	if b.shared != nil {
		d.shared = b.shared.downloads
	}
	return d
}
