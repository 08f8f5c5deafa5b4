package dockerfile

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// DefaultPathEnv is the PATH a stage gets when its base defines none, as
// BuildKit sets it; the builder also writes it into the image config.
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// State is what a stage starts from, or has at its end: the environment
// expansion and RUN see, the build args in scope, and the ONBUILD triggers
// a stage built on it runs first.
type State struct {
	// Env is "K=V" in order, each key once: ENV and ARG values. In an
	// Expanded's End it shares its array with the steps': read-only.
	Env []string
	// Args are the build args in scope with their values; read-only, as
	// Env.
	Args []Arg
	// OnBuild are ONBUILD trigger instructions, as in an image config.
	OnBuild []string

	// keepUnset leaves variables with no value as written, for a preview
	// whose base environment is unknown.
	keepUnset bool
}

// ImageState is the State of a stage built FROM a Linux image whose config
// has env and onBuild; ImageState(nil, nil) is FROM scratch. PATH is added
// when the image has none, as BuildKit does. ImageStateFor takes the OS.
func ImageState(env, onBuild []string) State {
	return ImageStateFor("linux", env, onBuild)
}

// ImageStateFor is ImageState for an image of the given OS (a stage's
// TargetPlatform().OS). Like BuildKit, it leaves PATH to the OS on Windows.
func ImageStateFor(os string, env, onBuild []string) State {
	env = slices.Clone(env)
	hasPath := slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") })
	if !hasPath && os != "windows" {
		env = append(env, "PATH="+DefaultPathEnv)
	}
	return State{Env: env, OnBuild: slices.Clone(onBuild)}
}

// Expanded is a stage with its variables expanded against a base State.
type Expanded struct {
	Steps []Step
	// End is the State after the last step: the base State of a stage
	// built FROM this one. Its OnBuild holds this stage's ONBUILD triggers.
	End State
}

// Expand expands the stage's instructions the way BuildKit dispatches them:
// ARG and ENV update the environment in order, and every instruction Docker
// expands is expanded with the environment before it. base is ImageState of
// the base image's config, or the End of the base stage's expansion.
// Expand does not change the Graph, so stages may be expanded concurrently.
func (s *Stage) Expand(base State) (*Expanded, error) {
	return s.expand(base, nil)
}

// expand is Expand, running the build checks of lint (nil: none) on the
// way, as BuildKit does as it dispatches the stage.
func (s *Stage) expand(base State, lint *stageLint) (*Expanded, error) {
	x := &expansion{
		stage: s,
		env:   newEnvList(base.Env),
		args:  newArgSet(base.Args),
		lex:   s.graph.scope.lex(base.keepUnset),
		lint:  lint,
	}
	var out Expanded
	for _, trigger := range base.OnBuild {
		st, err := x.trigger(trigger)
		if err != nil {
			return nil, err
		}
		out.Steps = append(out.Steps, st)
	}
	for _, node := range s.nodes {
		st, err := x.step(node, false)
		if err != nil {
			return nil, err
		}
		out.Steps = append(out.Steps, st)
	}
	out.End = State{Env: x.env.snapshot(), Args: x.args.snapshot(), OnBuild: x.onBuild, keepUnset: base.keepUnset}
	return &out, nil
}

// expansion is the running state of one Stage.Expand.
type expansion struct {
	stage   *Stage
	env     *envList
	args    *argSet
	onBuild []string
	lex     *shell.Lex
	lint    *stageLint // the preview's build checks; nil in Expand
}

func (x *expansion) errorAt(line int, err error) error {
	return errorAt(x.stage.graph.File, line, err)
}

// trigger parses an inherited ONBUILD instruction. Like BuildKit, it is
// located at the FROM line that inherits it.
func (x *expansion) trigger(expr string) (Step, error) {
	line := x.stage.Location.Line
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return Step{}, x.errorAt(line, fmt.Errorf("ONBUILD trigger %q: %w", expr, err))
	}
	if len(res.AST.Children) != 1 {
		return Step{}, x.errorAt(line, fmt.Errorf("ONBUILD trigger %q must be a single instruction", expr))
	}
	node := res.AST.Children[0]
	node.StartLine, node.EndLine = line, x.stage.Location.EndLine
	st, err := x.step(node, true)
	var de *Error
	if errors.As(err, &de) {
		// Name the trigger: the FROM line alone does not show it.
		de.Err = fmt.Errorf("ONBUILD trigger %q of the base: %w", expr, de.Err)
	}
	return st, err
}

// step parses node and expands it. The node is parsed afresh on every
// Expand because BuildKit's Expand methods change a command in place, and a
// second time to keep the instruction as written (raw), against which
// resolve tells values the base image's ENV may change from wrong ones.
func (x *expansion) step(node *parser.Node, onBuild bool) (Step, error) {
	cmd, err := parseCommand(node)
	if err != nil {
		return Step{}, x.errorAt(node.StartLine, err)
	}
	x.lint.begin(node)
	raw, err := parseCommand(node)
	if err != nil {
		return Step{}, x.errorAt(node.StartLine, err)
	}
	st := Step{
		Command:  cmd,
		Location: Location{Line: node.StartLine, EndLine: node.EndLine},
		Env:      x.env.snapshot(),
		Args:     x.args.snapshot(),
		OnBuild:  onBuild,
	}
	if run, ok := cmd.(*instructions.RunCommand); ok {
		deferred, err := x.expandRun(run, node.Flags)
		if err != nil {
			return Step{}, x.errorAt(node.StartLine, err)
		}
		if deferred {
			// Its mounts are only known with the image's ENV: show the
			// RUN as written, its mounts unresolved (expandRun checked
			// those it could), and check its other flags.
			if err := x.check(raw, raw, nil); err != nil {
				return Step{}, x.errorAt(node.StartLine, err)
			}
			st.Command, st.deferredFlags = raw, node.Flags
			return st, nil
		}
	} else if err := x.expand(cmd); err != nil {
		return Step{}, x.errorAt(node.StartLine, err)
	}
	if err := x.resolve(&st, raw); err != nil {
		return Step{}, x.errorAt(node.StartLine, err)
	}
	if err := x.check(cmd, raw, runMounts(cmd)); err != nil {
		return Step{}, x.errorAt(node.StartLine, err)
	}
	x.lint.after(cmd, raw, x)
	x.apply(cmd)
	return st, nil
}

// expand applies BuildKit's expansion rules to cmd: the Expand method where
// the instruction has one (ARG has its own rules), EXPOSE split into words,
// and heredoc bodies with ExpandRaw. RUN's command line and CMD,
// ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD are not expanded.
func (x *expansion) expand(cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		return x.arg(c)
	case *instructions.ExposeCommand:
		return x.expose(c)
	case instructions.SupportsSingleWordExpansion:
		if err := c.Expand(x.word); err != nil {
			return err
		}
	}
	if c, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		return c.ExpandRaw(x.rawWord)
	}
	return nil
}

// expandRun expands RUN's --mount flags. In a preview on an image, a
// --mount that uses a variable the image's ENV may define (uid=$APP_UID)
// cannot be checked until Expand has that ENV: the RUN is then deferred,
// and only its other --mount flags are checked now.
func (x *expansion) expandRun(c *instructions.RunCommand, flags []string) (deferred bool, err error) {
	err = c.Expand(x.word)
	if err == nil || !x.lex.SkipUnsetEnv {
		return false, err
	}
	for _, f := range flags {
		v, isMount := strings.CutPrefix(f, "--mount=")
		if !isMount {
			continue
		}
		if x.unknown(v) {
			deferred = true
		} else if err := x.checkMount(f); err != nil {
			return false, err
		}
	}
	if !deferred {
		return false, err
	}
	return true, nil
}

// checkMount expands one --mount flag on its own, in a RUN of its own,
// to learn whether it is wrong, or not supported, whatever the base image.
func (x *expansion) checkMount(flag string) error {
	res, err := parser.Parse(strings.NewReader("RUN " + flag + " true"))
	if err != nil || len(res.AST.Children) != 1 {
		return nil // the flag parsed in its own line; leave it to Expand
	}
	cmd, err := parseCommand(res.AST.Children[0])
	if err != nil {
		return err
	}
	run := cmd.(*instructions.RunCommand)
	if err := run.Expand(x.word); err != nil {
		return err
	}
	return x.check(run, run, instructions.GetMounts(run))
}

// runMounts is a RUN's expanded --mount flags; nil for other instructions.
func runMounts(cmd instructions.Command) []*instructions.Mount {
	if run, ok := cmd.(*instructions.RunCommand); ok {
		return instructions.GetMounts(run)
	}
	return nil
}

func (x *expansion) word(w string) (string, error) {
	v, unmatched, err := x.lex.ProcessWord(w, x.env)
	x.lint.undefinedVars(unmatched, x)
	return v, err
}

// rawWord expands a heredoc body: variables only, quotes kept, as BuildKit.
func (x *expansion) rawWord(w string) (string, error) {
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	lex.SkipUnsetEnv = x.lex.SkipUnsetEnv
	v, unmatched, err := lex.ProcessWord(w, x.env)
	x.lint.undefinedVars(unmatched, x)
	return v, err
}

func (x *expansion) expose(c *instructions.ExposeCommand) error {
	var ports []string
	for _, p := range c.Ports {
		words, err := x.lex.ProcessWords(p, x.env)
		if err != nil {
			return err
		}
		ports = append(ports, words...)
	}
	c.Ports = ports
	return nil
}

// arg resolves an ARG inside a stage as BuildKit's dispatchArg: a
// --build-arg wins, then the default (expanded), then the value of the
// global ARG of the same name. A value also enters the environment.
func (x *expansion) arg(c *instructions.ArgCommand) error {
	sc := x.stage.graph.scope
	for i, kv := range c.Args {
		a := Arg{Key: kv.Key}
		if v, ok := sc.buildArgs[kv.Key]; ok {
			a.Value, a.HasValue = v, true
		} else if kv.Value != nil {
			v, err := x.word(*kv.Value)
			if err != nil {
				return err
			}
			a.Value, a.HasValue = v, true
		} else if g, ok := sc.global.get(kv.Key); ok && g.HasValue {
			a.Value, a.HasValue = g.Value, true
		}
		if a.HasValue {
			c.Args[i].Value = &a.Value
			x.env.set(a.Key, a.Value)
		}
		x.args.set(a)
	}
	return nil
}

// apply records what cmd changes for the instructions after it.
func (x *expansion) apply(cmd instructions.Command) {
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			x.env.set(kv.Key, kv.Value)
		}
	case *instructions.OnbuildCommand:
		x.onBuild = append(x.onBuild, c.Expression)
	}
}
