package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/layer"
)

// Runner runs one RUN step; *executor.Executor is the real one. A test
// replaces it with a fake that writes into Spec.UpperDir.
type Runner interface {
	Run(ctx context.Context, spec executor.Spec) (executor.Result, error)
}

// ExitError is a RUN command that exited non-zero.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// runArgs is the argv of a RUN: the shell form through the stage's SHELL,
// with BuildKit's handling of a heredoc as the whole command.
func runArgs(c *instructions.RunCommand, shell []string) []string {
	args := c.CmdLine
	if len(c.Files) > 0 && len(args) == 1 && c.PrependShell {
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			args = []string{c.Files[0].Data}
		} else {
			for _, f := range c.Files {
				args = []string{args[0] + "\n" + f.Data + f.Name}
			}
		}
	}
	if c.PrependShell {
		return executor.ShellArgs(shell, strings.Join(args, " "))
	}
	return slices.Clone(args)
}

// checkRun refuses RUN features the builder does not implement, so none is
// silently ignored.
func checkRun(c *instructions.RunCommand) error {
	if len(c.Files) > 0 && strings.HasPrefix(c.Files[0].Data, "#!") {
		return fmt.Errorf("RUN heredoc with a #! line: %w", dockerfile.ErrNotSupported)
	}
	return nil
}

// network is RUN --network when given, else the build's --network.
func (b *build) network(c *instructions.RunCommand) executor.NetworkMode {
	switch instructions.GetNetwork(c) {
	case instructions.NetworkNone:
		return executor.NetworkNone
	case instructions.NetworkHost:
		return executor.NetworkHost
	}
	return b.opts.Network
}

// run executes a RUN on the stage's layers and turns what it changed
// into a layer; nil when it changed nothing (BuildKit writes no layer
// then either).
func (b *build) run(ctx context.Context, s *state, st dockerfile.Step, c *instructions.RunCommand, v *vertex) (*layer.Layer, error) {
	if b.opts.Runner == nil {
		return nil, fmt.Errorf("RUN needs a runner")
	}
	dir, err := os.MkdirTemp(b.tmp, "run-")
	if err != nil {
		return nil, fmt.Errorf("creating RUN directory: %w", err)
	}
	defer b.removeUnadopted(dir)
	out := v.output()
	defer out.flush()
	spec := b.runSpec(s, st, c, dir, out)
	if spec.Lowers, err = b.lowers(ctx, s); err != nil {
		return nil, err
	}
	mounts, release, err := b.runMounts(ctx, st)
	if err != nil {
		return nil, err
	}
	defer release()
	spec.Mounts = mounts
	res, err := b.opts.Runner.Run(ctx, spec)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, &ExitError{Code: res.ExitCode}
	}
	if empty, err := isEmptyDir(spec.UpperDir); err != nil || empty {
		return nil, err
	}
	return b.writeLayer(ctx, spec.UpperDir, layer.FromUpper)
}

// runSpec is what the sandbox runs: the stage's config decides the user,
// directory and shell, the step its environment.
func (b *build) runSpec(s *state, st dockerfile.Step, c *instructions.RunCommand, dir string, out io.Writer) executor.Spec {
	cfg := s.config.Config
	return executor.Spec{
		UpperDir: filepath.Join(dir, "upper"),
		WorkDir:  filepath.Join(dir, "work"),
		Args:     runArgs(c, cfg.Shell),
		Env:      append(slices.Clone(st.Env), b.opts.Graph.ProxyEnv...),
		Cwd:      cfg.WorkingDir,
		User:     cfg.User,
		Network:  b.network(c),
		Stdout:   out,
		Stderr:   out,
	}
}

func isEmptyDir(dir string) (bool, error) {
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return true, nil
	}
	return len(des) == 0, err
}

// writeLayer turns dir, a directory under b.tmp, into a layer. Unless the
// build is rootless (its snapshots are extracted as the calling user), dir
// becomes the layer's snapshot when a later step needs one, sparing the
// extraction of the blob; it stays until then, or until the build ends.
func (b *build) writeLayer(ctx context.Context, dir string, src layer.Source) (*layer.Layer, error) {
	opts := layer.WriteOptions{Source: src, Compression: b.opts.Compression, Epoch: b.opts.Epoch, Adopt: b.adopts()}
	l, err := b.opts.Store.WriteLayer(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return l, nil
}

// adopts says whether layers written from the build's directories become
// their snapshots; removeUnadopted removes such a directory otherwise.
func (b *build) adopts() bool { return !b.opts.IgnoreOwnership }

func (b *build) removeUnadopted(dir string) {
	if !b.adopts() {
		os.RemoveAll(dir)
	}
}

// lowers are the snapshot directories of the state's layers, top-most
// first; each layer is extracted once per store.
func (b *build) lowers(ctx context.Context, s *state) ([]string, error) {
	out := make([]string, len(s.layers))
	for i, l := range s.layers {
		if err := b.prefetch.wait(ctx, l); err != nil {
			return nil, err
		}
		dir, err := b.opts.Store.Snapshot(ctx, l, layer.ExtractOptions{IgnoreOwnership: b.opts.IgnoreOwnership})
		if err != nil {
			return nil, fmt.Errorf("extracting layer: %w", err)
		}
		out[len(s.layers)-1-i] = dir
	}
	return out, nil
}
