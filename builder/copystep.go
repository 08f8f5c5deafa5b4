package builder

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/layer"
)

// copyPlan is a COPY or ADD ready to run: what it writes and the digest
// of what it reads.
type copyPlan struct {
	op      *copyOp
	files   []planned
	content string
	// fromKey and fromName are COPY --from's source: its key, and how
	// the Dockerfile names it.
	fromKey, fromName string
	// stage holds the context files' content read for the key (nil: none
	// staged); copy places it, a hit leaves it to be discarded.
	stage *stager
}

// discard drops what is staged and not placed.
func (cp *copyPlan) discard() { cp.stage.discard() }

func (b *build) planCopy(ctx context.Context, s *state, st dockerfile.Step) (*copyPlan, error) {
	op, err := b.copyOp(ctx, s, st)
	if err != nil {
		return nil, err
	}
	files, err := op.plan(ctx)
	if err != nil {
		return nil, err
	}
	cp := &copyPlan{op: op, files: files}
	fromKey := ""
	if op.context {
		// The context's files are read now, for the key, and staged as
		// they are read (stager), before and while the base is extracted:
		// on a miss the writer places exactly these bytes, reading the
		// context no second time.
		if b.stagesCopies() {
			cp.stage = b.newStager(s, cp)
		}
		if err = op.describeStaged(files, cp.stage); err != nil {
			cp.discard()
			return nil, err
		}
	} else {
		var src *state
		if src, err = b.source(ctx, st.From); err == nil {
			fromKey = src.key
			cp.fromKey, cp.fromName = src.key, b.sourceName(st.From)
		}
	}
	if err != nil {
		return nil, err
	}
	if cp.content, err = copyKey(op, files, fromKey); err != nil {
		cp.discard()
		return nil, err
	}
	return cp, nil
}

// copyOp gathers a COPY or ADD's flags, source tree and destination.
func (b *build) copyOp(ctx context.Context, s *state, st dockerfile.Step) (*copyOp, error) {
	op := &copyOp{mode: st.Mode, dl: b.downloader(), owners: b.opts.Owners}
	var sd instructions.SourcesAndDest
	var chown, chmod string
	switch c := st.Command.(type) {
	case *instructions.CopyCommand:
		op.name, sd, chown, chmod = "COPY", c.SourcesAndDest, c.Chown, c.Chmod
		op.parents, op.exclude = c.Parents, c.ExcludePatterns
	case *instructions.AddCommand:
		op.name, sd, chown, chmod, op.add, op.checksum = "ADD", c.SourcesAndDest, c.Chown, c.Chmod, true, c.Checksum
		op.exclude, op.unpack = c.ExcludePatterns, c.Unpack
		op.keepGitDir = c.KeepGitDir
	}
	if len(op.exclude) > 0 {
		var err error
		if op.excluded, err = patternmatcher.New(op.exclude); err != nil {
			return nil, fmt.Errorf("%s --exclude: %w", op.name, err)
		}
	}
	if chmod != "" && st.Mode == nil {
		// Not octal: Parse checked it is a symbolic mode.
		set, err := dockerfile.ParseChmod(chmod)
		if err != nil {
			return nil, err
		}
		op.chmod, op.modes = chmod, &set
	}
	op.context = st.From.Kind == dockerfile.SourceContext
	if op.context {
		op.from = b.context
	}
	op.sources = sd.SourcePaths
	for _, h := range sd.SourceContents {
		op.heredocs = append(op.heredocs, heredoc{name: h.Path, data: h.Data})
	}
	op.dest = destPath(s.config.Config.WorkingDir, sd.DestPath)
	op.chownSpec = chown
	return op, nil
}

// destPath makes a relative destination relative to WORKDIR, keeping a
// trailing "/" (it makes the destination a directory).
func destPath(workdir, dest string) string {
	slash := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		if workdir == "" {
			workdir = "/"
		}
		dest = path.Join(workdir, dest)
	}
	dest = path.Clean(dest)
	if slash && dest != "/" {
		dest += "/"
	}
	return dest
}

// sourceName is how the Dockerfile names a COPY --from source.
func (b *build) sourceName(src dockerfile.Source) string {
	if src.Kind == dockerfile.SourceStage {
		if st := b.opts.Graph.Stage(src.Stage); st != nil {
			return "stage " + st.DisplayName()
		}
	}
	return src.String()
}

// sourceTree is where a COPY reads: the context, a stage or an image.
func (b *build) sourceTree(ctx context.Context, src dockerfile.Source) (srcTree, error) {
	if src.Kind == dockerfile.SourceContext {
		return b.context, nil
	}
	s, err := b.source(ctx, src)
	if err != nil {
		return nil, err
	}
	lowers, err := b.lowers(ctx, s)
	if err != nil {
		return nil, err
	}
	return mergedFS{lowers: lowers}, nil
}

// source is the state of a COPY --from stage or image.
func (b *build) source(ctx context.Context, src dockerfile.Source) (*state, error) {
	switch src.Kind {
	case dockerfile.SourceStage:
		if done, ok := b.builtStage(src.Stage); ok {
			return done.state, nil
		}
		return nil, fmt.Errorf("stage %d is not built", src.Stage)
	case dockerfile.SourceImage:
		return b.image(ctx, src.Image, platformString(b.opts.Graph.Platform))
	}
	return b.scratch(), nil
}

// copy writes the planned files into a fresh directory and makes it the
// step's layer.
func (b *build) copy(ctx context.Context, s *state, st dockerfile.Step, cp *copyPlan) (*layer.Layer, error) {
	// Whatever is left staged once the files are placed, or the step fails.
	defer cp.discard()
	// ADD rootfs.tar.gz / on scratch: the archive written as a stream.
	if l, ok, err := b.addStream(ctx, s, cp); ok {
		return l, err
	}
	op := cp.op
	lowers, err := b.lowers(ctx, s)
	if err != nil {
		return nil, err
	}
	op.image = mergedFS{lowers: lowers}
	if op.chown, err = resolveChown(op.chownSpec, op.image); err != nil {
		return nil, err
	}
	if !op.context {
		if op.from, err = b.sourceTree(ctx, st.From); err != nil {
			return nil, err
		}
	}
	files, err := op.place(cp.files)
	if err != nil {
		return nil, err
	}
	// A stage's or image's files are listed only now that they are needed.
	if !op.context {
		if err := op.describeFiles(files); err != nil {
			return nil, err
		}
	}
	out, err := os.MkdirTemp(b.tmp, "copy-")
	if err != nil {
		return nil, fmt.Errorf("creating COPY directory: %w", err)
	}
	defer b.removeUnadopted(out)
	w := &writer{op: op, out: out, now: b.now(), owners: b.opts.Owners}
	for _, p := range files {
		if err := w.apply(ctx, p); err != nil {
			return nil, err
		}
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	return b.writeLayer(ctx, out, layer.FromDir)
}
