package builder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/layer"
)

// stageRun is one stage being built.
type stageRun struct {
	stage *dockerfile.Stage
	state *state
	meta  stageMeta
	total int // steps shown as [k/total], FROM being 1
	// platform is what the steps run as (runPlatform), in their keys.
	platform string
	// fetching: the stage's layers are being made ready (downloaded,
	// extracted) ahead of the steps, since one of them missed.
	fetching bool
}

func (b *build) stage(ctx context.Context, st *dockerfile.Stage) (err error) {
	// The cache keeps the stage's entries in the background; they are in the store when
	// the stage ends, failed or not.
	defer func() {
		if ferr := b.flushCache(); err == nil {
			err = ferr
		}
	}()
	start := time.Now()
	from := "FROM " + b.baseName(st.Base)
	base, baseState, err := b.base(ctx, st)
	if err != nil {
		b.prog.vertexSince(b.label(st, 1, len(st.Steps)+1, from), start).fail(err)
		return stepError(b.opts.Graph.File, st.Location.Line, interruption(err))
	}
	x, err := st.Expand(baseState)
	if err != nil {
		return err
	}
	// The total is known once the base's ONBUILD triggers are.
	b.prog.vertexSince(b.label(st, 1, len(x.Steps)+1, from), start).done()
	r := &stageRun{stage: st, state: base.clone(), total: len(x.Steps) + 1, platform: b.runPlatform(st)}
	r.state.config.Config.OnBuild = nil
	for i, step := range x.Steps {
		if err := b.step(ctx, r, i+2, step); err != nil {
			text := b.commandText(step)
			return stepError(b.opts.Graph.File, step.Location.Line, fmt.Errorf("step %d/%d %s: %w", i+2, r.total, text, interruption(err)))
		}
	}
	b.setBuilt(st.Index, &built{state: r.state, end: x.End})
	return nil
}

func stepError(file string, line int, err error) error {
	return &dockerfile.Error{File: file, Line: line, Err: err}
}

// interruptedError is a step stopped by the build's cancellation (Ctrl-C,
// or a sibling stage's failure): "context canceled" would say neither.
type interruptedError struct{ err error }

func (e interruptedError) Error() string { return "interrupted" }

func (e interruptedError) Unwrap() error { return e.err }

func interruption(err error) error {
	if errors.Is(err, context.Canceled) {
		return interruptedError{err}
	}
	return err
}

// label names a step in the progress output as BuildKit does.
func (b *build) label(st *dockerfile.Stage, k, n int, text string) string {
	if len(b.opts.Graph.Stages) > 1 {
		return fmt.Sprintf("[%s%s %d/%d] %s", b.stagePrefix(st), st.DisplayName(), k, n, text)
	}
	return fmt.Sprintf("[%s%d/%d] %s", b.stagePrefix(st), k, n, text)
}

// step runs one instruction: config change and history always, a layer
// for RUN, COPY and ADD, each looked up in the cache first.
func (b *build) step(ctx context.Context, r *stageRun, k int, st dockerfile.Step) error {
	v := b.prog.vertex(b.label(r.stage, k, r.total, b.commandText(st)))
	err := b.doStep(ctx, r, k, st, v)
	if err != nil {
		v.fail(err)
	}
	return err
}

func (b *build) doStep(ctx context.Context, r *stageRun, k int, st dockerfile.Step, v *vertex) error {
	createdBy, err := applyConfig(&r.state.config, st, &r.meta)
	if err != nil {
		return err
	}
	plan, key, err := b.prepare(ctx, r.platform, r.state, st, createdBy)
	if err != nil {
		return err
	}
	if plan.copy != nil {
		// A hit never places what a COPY staged: drop it when the step
		// ends rather than when the plan is collected.
		defer plan.copy.discard()
	}
	plan.explain = b.explainRecord(r, k, st, plan, key)
	if b.opts.afterKey != nil {
		b.opts.afterKey(st)
	}
	lookup := key // the key siblings look up; --no-cache-filter's rerun changes key
	if sh := b.shared; sh != nil {
		// A sibling platform's build with this very step runs it once.
		defer sh.lock(key)()
		entry, kept, err := sh.result(key)
		if err != nil {
			return err
		}
		if entry != nil {
			// kept, not key: a --no-cache-filter rerun chains on its own key.
			r.state.commit(entry.Layer, entry.History, kept, changesFiles(st.Command), plan.explain)
			v.cached()
			return nil
		}
	}
	if entry, err := b.cached(ctx, r.stage, key); err != nil || entry != nil {
		if err == nil {
			r.state.commit(entry.Layer, entry.History, key, changesFiles(st.Command), plan.explain)
			v.cached()
		}
		return err
	}
	rerun := b.noCacheStage(r.stage)
	if b.opts.ExplainCache && !b.opts.NoCache && !rerun {
		b.explainMiss(ctx, v, plan.explain)
	}
	if !r.fetching && changesFiles(st.Command) {
		// The first step that does filesystem work: its lowers (and those
		// of the steps after it) are needed from now on.
		r.fetching = true
		b.prefetch.start(r.state.layers)
	}
	if changesFiles(st.Command) {
		free, err := b.slot(ctx)
		if err != nil {
			return err
		}
		defer free()
	}
	l, err := b.execute(ctx, r.state, st, plan, v)
	if err != nil {
		if b.shared != nil {
			b.shared.failed(lookup, err)
		}
		return err
	}
	if rerun {
		if key, err = rerunKey(key, l); err != nil {
			return err
		}
	}
	h := v1.History{Created: v1.Time{Time: b.now()}, CreatedBy: createdBy, Comment: historyComment, EmptyLayer: l == nil}
	if createdBy == "" {
		h = v1.History{}
	}
	entry := &cache.Entry{Layer: l, History: h, Explain: plan.explain}
	if err := b.cache.Put(ctx, key, entry); err != nil {
		return err
	}
	if b.shared != nil {
		b.shared.remember(lookup, key, entry)
	}
	r.state.commit(l, h, key, changesFiles(st.Command), plan.explain)
	v.done()
	return nil
}

// commit appends a step's result; an empty history means none (ONBUILD).
// Only steps that may change the filesystem advance the state's key.
func (s *state) commit(l *layer.Layer, h v1.History, key string, fsStep bool, x *cache.Explain) {
	s.steps = append(s.steps, cache.Step{Key: key, Layer: l, History: h, Explain: x})
	if l != nil {
		s.layers = append(s.layers, l)
	}
	if h.CreatedBy != "" || l != nil {
		s.config.History = append(s.config.History, h)
	}
	if fsStep {
		s.key = key
	}
	s.prev = key
}

// changesFiles reports the instructions that can change the filesystem.
func changesFiles(cmd any) bool {
	switch cmd.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
		return true
	}
	return false
}

func (b *build) cached(ctx context.Context, st *dockerfile.Stage, key string) (*cache.Entry, error) {
	if b.opts.NoCache || b.noCacheStage(st) {
		return nil, nil
	}
	return b.cache.Get(ctx, key)
}

// prepare computes the step's cache key (see keyInput for what it
// covers); for COPY and ADD it plans the copy (resolving sources,
// downloading URLs) and hashes the sources.
func (b *build) prepare(ctx context.Context, platform string, s *state, st dockerfile.Step, createdBy string) (*stepPlan, string, error) {
	in := keyInput{
		Parent:   s.key,
		Platform: platform,
		Kind:     fmt.Sprintf("%T", st.Command),
		Command:  st.Command,
		Layer:    b.layerKey(),
	}
	plan := &stepPlan{}
	var err error
	switch c := st.Command.(type) {
	case *instructions.RunCommand:
		in.Run, plan.binds, err = b.runKey(ctx, s, st, c, createdBy)
	case *instructions.CopyCommand, *instructions.AddCommand:
		if plan.copy, err = b.planCopy(ctx, s, st); err == nil {
			in.Copy = plan.copy.content
		}
	case *instructions.WorkdirCommand:
		in.Workdir = &workdirKey{Dir: s.config.Config.WorkingDir, User: s.config.Config.User}
	default:
		in.Prev, in.Env, in.Args = s.prev, st.Env, st.Args
	}
	if err != nil {
		return nil, "", err
	}
	key, err := in.key()
	plan.in = in
	return plan, key, err
}

// stepPlan is what prepare learned of a step beyond its key, for execute:
// the exact files a COPY or a RUN's context binds were keyed on.
type stepPlan struct {
	copy  *copyPlan
	binds []*bindPlan // by index in the step's mounts; nil for other kinds
	// in is what the key covers; explain is it as --explain-cache shows it.
	in      keyInput
	explain *cache.Explain
}

// runKey is what a RUN's key covers: the spec the executor gets, less the
// fields that cannot change the result, and the mounts.
func (b *build) runKey(ctx context.Context, s *state, st dockerfile.Step, c *instructions.RunCommand, createdBy string) (*runKey, []*bindPlan, error) {
	if err := checkRun(c); err != nil {
		return nil, nil, err
	}
	// Before the lookup: an entry made by a build that was allowed the host
	// network must not serve one that was not (an ONBUILD trigger of a base
	// image is not in the preflight).
	if err := b.checkNetwork(c); err != nil {
		return nil, nil, err
	}
	spec := b.runSpec(s, st, c, "", nil)
	// The step's own directories, its output, its lowers (the parent key
	// covers them) and its mounts' host paths (mountsKey covers what they
	// show) say nothing about the result.
	spec.UpperDir, spec.WorkDir, spec.Lowers, spec.Mounts = "", "", nil, nil
	spec.Stdout, spec.Stderr = nil, nil
	// Docker keeps the proxy build args out of keys: a different proxy
	// fetches the same packages. runSpec appends them last.
	proxy := b.opts.Graph.ProxyEnv
	if n := len(spec.Env) - len(proxy); n >= 0 && slices.Equal(spec.Env[n:], proxy) {
		spec.Env = spec.Env[:n]
	}
	k := &runKey{Spec: spec, CreatedBy: createdBy}
	var binds []*bindPlan
	if len(st.Mounts) > 0 {
		var err error
		if k.Mounts, binds, err = b.mountsKey(ctx, st); err != nil {
			return nil, nil, err
		}
	}
	return k, binds, nil
}

func (b *build) layerKey() string {
	k := string(b.opts.Compression)
	if b.opts.Epoch != nil {
		k += fmt.Sprintf(" epoch=%d", b.opts.Epoch.Unix())
	}
	return k
}

// execute does the filesystem work of a step that missed the cache.
func (b *build) execute(ctx context.Context, s *state, st dockerfile.Step, plan *stepPlan, v *vertex) (*layer.Layer, error) {
	switch c := st.Command.(type) {
	case *instructions.RunCommand:
		return b.run(ctx, s, st, c, plan.binds, v)
	case *instructions.CopyCommand, *instructions.AddCommand:
		return b.copy(ctx, s, st, plan.copy)
	case *instructions.WorkdirCommand:
		return b.workdir(ctx, s)
	}
	return nil, nil
}

// baseName is how a FROM shows in the progress output.
func (b *build) baseName(src dockerfile.Source) string {
	switch src.Kind {
	case dockerfile.SourceImage:
		return src.Image
	case dockerfile.SourceStage:
		if st := b.opts.Graph.Stage(src.Stage); st != nil {
			return st.DisplayName()
		}
	}
	return "scratch"
}

// commandText is the instruction as progress and errors show it:
// BuildKit's display name (dockerfile.Graph.StepText), quotes and unset
// variables as written. Keys never read it.
func (b *build) commandText(st dockerfile.Step) string {
	return b.opts.Graph.StepText(st)
}
