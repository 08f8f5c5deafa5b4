package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
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

// scriptDir is where BuildKit's dispatchRun mounts the script of a RUN
// whose whole command is a heredoc starting with #!: read-only, a
// directory holding that one file, inside the sandbox's /dev (a tmpfs of
// its own), so nothing of it reaches the layer.
const scriptDir = "/dev/pipes"

// runArgs is the argv of a RUN: the shell form through the stage's SHELL,
// with BuildKit's handling of heredocs.
func runArgs(c *instructions.RunCommand, shell []string) []string {
	args := runCommand(c)
	if c.PrependShell {
		return executor.ShellArgs(shell, strings.Join(args, " "))
	}
	return slices.Clone(args)
}

// runCommand is the RUN's command line once its heredocs are dealt with as
// BuildKit's dispatchRun does: a command that is one heredoc becomes its
// body, run by the shell, or the path of the body written as a file when
// it starts with #!, run by the interpreter it names; a command that
// feeds heredocs to a program goes to the shell with them appended.
func runCommand(c *instructions.RunCommand) []string {
	switch {
	case len(c.Files) == 0 || len(c.CmdLine) != 1 || !c.PrependShell:
		return c.CmdLine
	case !wholeHeredoc(c):
		var b strings.Builder
		b.WriteString(c.CmdLine[0])
		for _, f := range c.Files {
			b.WriteString("\n" + f.Data + f.Name)
		}
		return []string{b.String()}
	}
	if s, ok := heredocScript(c); ok {
		return []string{path.Join(scriptDir, s.name)}
	}
	return []string{heredocBody(c.Files[0])}
}

// wholeHeredoc reports a shell-form RUN whose command is a heredoc alone
// (RUN <<EOF), not a command reading one (RUN python3 <<EOF).
func wholeHeredoc(c *instructions.RunCommand) bool {
	return len(c.Files) > 0 && len(c.CmdLine) == 1 && c.PrependShell &&
		parser.MustParseHeredoc(c.CmdLine[0]) != nil
}

// script is a file a RUN runs from scriptDir.
type script struct {
	name, data string
}

// heredocScript is the script of a RUN whose whole command is a heredoc
// with a #! line (after <<- strips tabs), which BuildKit writes as a file
// named after the heredoc.
func heredocScript(c *instructions.RunCommand) (script, bool) {
	if !wholeHeredoc(c) {
		return script{}, false
	}
	data := heredocBody(c.Files[0])
	if !strings.HasPrefix(data, "#!") {
		return script{}, false
	}
	return script{name: c.Files[0].Name, data: data}, true
}

// heredocBody is a heredoc's content; <<- strips its lines' leading tabs.
func heredocBody(f instructions.ShellInlineFile) string {
	if f.Chomp {
		return parser.ChompHeredocContent(f.Data)
	}
	return f.Data
}

// checkRun refuses what BuildKit refuses in a RUN: heredocs on a command
// BuildKit cannot give them to, and a script name that is no file name.
func checkRun(c *instructions.RunCommand) error {
	if len(c.Files) > 0 && (len(c.CmdLine) != 1 || !c.PrependShell) {
		return fmt.Errorf("parsing produced an invalid run command: %v", c.CmdLine)
	}
	if s, ok := heredocScript(c); ok && !isFileName(s.name) {
		return fmt.Errorf("RUN heredoc script name %q is not a file name", s.name)
	}
	return nil
}

func isFileName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.Contains(name, "/")
}

// addScript mounts the RUN's heredoc script, when it has one, on
// scriptDir; the func returned removes the script once the step is done
// (dir may stay until the build ends, its upper dir adopted).
func addScript(spec *executor.Spec, c *instructions.RunCommand, dir string) (func(), error) {
	s, ok := heredocScript(c)
	if !ok {
		return func() {}, nil
	}
	m, err := writeScript(dir, s)
	if err != nil {
		return nil, err
	}
	spec.Mounts = append([]executor.Mount{m}, spec.Mounts...)
	return func() { os.RemoveAll(m.Source) }, nil
}

// writeScript writes s as BuildKit's llb.Mkfile does (mode 0755, owned by
// the user strata runs as: root, but for rootless builds) alone in a
// directory under dir, and returns the read-only mount of that directory
// on scriptDir.
func writeScript(dir string, s script) (executor.Mount, error) {
	src := filepath.Join(dir, "pipes")
	p := filepath.Join(src, s.name)
	if err := os.Mkdir(src, 0o755); err != nil {
		return executor.Mount{}, fmt.Errorf("writing the heredoc script: %w", err)
	}
	if err := os.WriteFile(p, []byte(s.data), 0o755); err != nil {
		return executor.Mount{}, fmt.Errorf("writing the heredoc script: %w", err)
	}
	// Both modes are BuildKit's whatever the umask.
	for _, q := range []string{src, p} {
		if err := os.Chmod(q, 0o755); err != nil {
			return executor.Mount{}, fmt.Errorf("writing the heredoc script: %w", err)
		}
	}
	return executor.Mount{Type: executor.MountBind, Source: src, Target: scriptDir, ReadOnly: true}, nil
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
func (b *build) run(ctx context.Context, s *state, st dockerfile.Step, c *instructions.RunCommand, binds []*bindPlan, v *vertex) (*layer.Layer, error) {
	if b.opts.Runner == nil {
		return nil, fmt.Errorf("RUN needs a runner")
	}
	// Also here: an ONBUILD trigger of a base image is not in the preview.
	if err := b.checkNetwork(c); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(b.tmp, "run-")
	if err != nil {
		return nil, fmt.Errorf("creating RUN directory: %w", err)
	}
	defer b.removeUnadopted(dir)
	stdout, stderr := v.output(progress.Stdout), v.output(progress.Stderr)
	defer stdout.Flush()
	defer stderr.Flush()
	spec := b.runSpec(s, st, c, dir, stdout)
	spec.Stderr = stderr
	if spec.Lowers, err = b.lowers(ctx, s); err != nil {
		return nil, err
	}
	mounts, release, err := b.runMounts(ctx, st, binds)
	if err != nil {
		return nil, err
	}
	defer release()
	spec.Mounts = mounts
	// After the key (runKey makes its own spec): secret values are no input of it.
	spec.Env = b.withSSHAuthSock(withEnv(spec.Env, b.secretEnv(st)), st)
	removeScript, err := addScript(&spec, c, dir)
	if err != nil {
		return nil, err
	}
	defer removeScript()
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
		// The build's flags, the same for every RUN; keyed with the spec.
		ExtraHosts: b.opts.ExtraHosts,
		Ulimits:    b.opts.Ulimits,
		ShmSize:    b.opts.ShmSize,
		Stdout:     out,
		Stderr:     out,
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
	opts := layer.WriteOptions{Source: src, Compression: b.opts.Compression, Epoch: b.opts.Epoch, Adopt: b.adopts(), Owners: b.opts.Owners}
	l, err := b.opts.Store.WriteLayer(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return l, nil
}

// adopts says whether layers written from the build's directories become
// their snapshots; removeUnadopted removes such a directory otherwise.
func (b *build) adopts() bool { return b.opts.Owners == nil || b.opts.Owners.OnDisk() }

func (b *build) removeUnadopted(dir string) {
	if !b.adopts() {
		os.RemoveAll(dir)
	}
}

// lowers are the snapshot directories of the state's layers, top-most
// first; each layer is extracted once per store. A layer the stack holds
// more than once (a repeated `apt-get update`, the same COPY twice) gets a
// directory of its own for each further occurrence, as each layer of a
// chain is a snapshot of its own in BuildKit: overlayfs refuses one
// directory twice among its lowers, and dropping the lower copy would
// change what the step sees (a directory both copies hold is merged, and
// overlayfs reports such a directory with one link).
func (b *build) lowers(ctx context.Context, s *state) ([]string, error) {
	out := make([]string, len(s.layers))
	seen := map[v1.Hash]int{} // occurrences so far, bottom up
	for i, l := range s.layers {
		dir, err := b.snapshot(ctx, l, seen)
		if err != nil {
			return nil, err
		}
		out[len(s.layers)-1-i] = dir
	}
	return out, nil
}

// snapshot is the directory of l's next occurrence in a stack: the layer's
// snapshot the first time, a copy of it (Store.SnapshotCopy) after that.
func (b *build) snapshot(ctx context.Context, l *layer.Layer, seen map[v1.Hash]int) (string, error) {
	if err := b.prefetch.wait(ctx, l); err != nil {
		return "", err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return "", fmt.Errorf("reading layer diffID: %w", err)
	}
	n := seen[diffID]
	seen[diffID]++
	opts := layer.ExtractOptions{Owners: b.opts.Owners}
	var dir string
	if n == 0 {
		dir, err = b.opts.Store.Snapshot(ctx, l, opts)
	} else {
		dir, err = b.opts.Store.SnapshotCopy(ctx, l, n, opts)
	}
	if err != nil {
		return "", fmt.Errorf("extracting layer: %w", err)
	}
	return dir, nil
}
