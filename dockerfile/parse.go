package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Parse reads a Dockerfile into the graph of the stages opts.Target needs.
// Every error is an *Error (errors.As) naming opts.File and the line.
func Parse(src []byte, opts Options) (*Graph, error) {
	opts.normalize()
	p := &parsing{opts: opts, g: &Graph{
		File:          opts.File,
		Platform:      opts.Platform,
		BuildPlatform: opts.BuildPlatform,
		ProxyEnv:      proxyEnv(opts.BuildArgs),
	}}
	if len(bytes.TrimSpace(src)) == 0 {
		return nil, p.fileError(errors.New("the Dockerfile is empty"))
	}
	if syntax, _, loc, ok := parser.DetectSyntax(src); ok {
		p.g.Syntax = syntax
		p.warnSyntax(syntax, loc)
	}
	if err := p.lintConfig(src); err != nil {
		return nil, err
	}
	if err := p.parse(src); err != nil {
		return nil, err
	}
	if err := p.link(); err != nil {
		return nil, err
	}
	p.checkStages()
	if err := p.preview(); err != nil {
		return nil, err
	}
	p.warnUnusedBuildArgs()
	if err := p.lintError(); err != nil {
		return nil, err
	}
	return p.g, nil
}

// parsing is the state of one Parse call.
type parsing struct {
	opts   Options
	g      *Graph
	all    stageList // every stage, kept or not, by index
	metas  []*instructions.ArgCommand
	argKey map[string]bool // every ARG name declared anywhere
	// lint runs BuildKit's build checks as configured (# check= or
	// BUILDKIT_DOCKERFILE_CHECK); lintErr asks for their warnings to fail
	// the build (error=true), and violations are the warnings they gave.
	lint       *linter.Linter
	lintErr    bool
	violations []Warning
}

func (p *parsing) fileError(err error) error {
	return &Error{File: p.opts.File, Err: err}
}

// parse runs BuildKit's parser and instruction parser over src and groups
// the instructions into stages.
func (p *parsing) parse(src []byte) error {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		if strings.Contains(err.Error(), "file with no instructions") {
			return p.fileError(errors.New("the Dockerfile has no instructions"))
		}
		return errorAt(p.opts.File, 1, err)
	}
	p.g.Escape = res.EscapeToken
	for _, w := range res.Warnings {
		// As BuildKit's toDispatchState: the parser's only warning.
		if w.URL == linter.RuleNoEmptyContinuation.URL {
			p.lint.Run(&linter.RuleNoEmptyContinuation, []parser.Range{*w.Location}, linter.RuleNoEmptyContinuation.Format())
		}
	}
	p.argKey = map[string]bool{}
	for _, node := range res.AST.Children {
		if err := p.instruction(node, p.lint); err != nil {
			return err
		}
	}
	if len(p.all) == 0 {
		return p.fileError(errors.New("no FROM instruction: a Dockerfile needs at least one stage"))
	}
	return nil
}

func (p *parsing) instruction(node *parser.Node, lint *linter.Linter) error {
	v, err := instructions.ParseInstructionWithLinter(node, lint)
	if err != nil {
		return errorAt(p.opts.File, node.StartLine, err)
	}
	if arg, ok := v.(*instructions.ArgCommand); ok {
		for _, kv := range arg.Args {
			p.argKey[kv.Key] = true
		}
		if len(p.all) == 0 {
			p.metas = append(p.metas, arg)
			return nil
		}
	}
	switch c := v.(type) {
	case *instructions.Stage:
		return p.addStage(c)
	case instructions.Command:
		if len(p.all) == 0 {
			return &Error{File: p.opts.File, Line: node.StartLine, Err: fmt.Errorf(
				"%s before the first FROM: only ARG may come before FROM", strings.ToUpper(c.Name()))}
		}
		cur := p.all[len(p.all)-1]
		cur.nodes = append(cur.nodes, node)
		return nil
	}
	return &Error{File: p.opts.File, Line: node.StartLine, Err: fmt.Errorf("unexpected instruction %s", node.Value)}
}

// addStage records a FROM. A stage name used twice is only a warning, as
// in BuildKit (DuplicateStageName); references then resolve as BuildKit's
// stagesByName map does (see stageList.named).
func (p *parsing) addStage(c *instructions.Stage) error {
	loc := locationOf(c.Location)
	if c.Name != "" && p.all.named(c.Name) >= 0 {
		p.lint.Run(&linter.RuleDuplicateStageName, c.Location, linter.RuleDuplicateStageName.Format(c.Name))
	}
	p.all = append(p.all, &Stage{
		Index:    len(p.all),
		Name:     c.Name,
		Location: loc,
		Base:     Source{Kind: SourceImage, Image: c.BaseName},
		Platform: c.Platform,
		from:     c,
		graph:    p.g,
	})
	return nil
}

// lintWarning receives the warnings of BuildKit's build checks, those
// the check configuration keeps.
func (p *parsing) lintWarning(rule, _, _, msg string, loc []parser.Range) {
	w := Warning{Line: locationOf(loc).Line, Rule: rule, Message: msg}
	p.g.Warnings = append(p.g.Warnings, w)
	p.violations = append(p.violations, w)
}

// lintConfig sets up the build checks as BuildKit's newRuleLinter: the
// BUILDKIT_DOCKERFILE_CHECK build arg, when given, replaces the
// Dockerfile's # check= directive (skip=Rule,...|all; error=true;
// experimental=...). A # check= comment right before an instruction adds
// to it for that instruction (BuildKit's parser does that).
func (p *parsing) lintConfig(src []byte) error {
	var cfg *linter.Config
	var err error
	if v, ok := p.opts.BuildArgs[checkArg]; ok {
		if cfg, err = linter.ParseLintOptions(v); err != nil {
			return fmt.Errorf("--build-arg %s=%s: %w", checkArg, v, err)
		}
	} else {
		v, _, loc, _ := parser.ParseDirective("check", src)
		if cfg, err = linter.ParseLintOptions(v); err != nil {
			return &Error{File: p.opts.File, Line: locationOf(loc).Line, Err: fmt.Errorf("# check=%s: %w", v, err)}
		}
	}
	p.lintErr = cfg.ReturnAsError
	cfg.Warn = p.lintWarning
	p.lint = linter.New(cfg)
	return nil
}

// checkArg is BuildKit's build arg that configures the build checks.
const checkArg = "BUILDKIT_DOCKERFILE_CHECK"

// lintError fails the build when the checks are to be errors (error=true)
// and one warned, as BuildKit does once the Dockerfile is converted,
// before anything runs: at the first violation, naming every rule, each
// violation on a line of its own (the warnings are not printed otherwise:
// Parse returns no graph).
func (p *parsing) lintError() error {
	if !p.lintErr || len(p.violations) == 0 {
		return nil
	}
	var rules []string
	var detail strings.Builder
	for _, w := range p.violations {
		if !slices.Contains(rules, w.Rule) {
			rules = append(rules, w.Rule)
		}
		fmt.Fprintf(&detail, "\n  %s:%d: %s: %s", p.opts.File, w.Line, w.Rule, w.Message)
	}
	slices.Sort(rules)
	return &Error{File: p.opts.File, Line: p.violations[0].Line, Err: fmt.Errorf(
		"lint violation found for rules: %s (the check configuration has error=true)%s", strings.Join(rules, ", "), detail.String())}
}

// warnSyntax says that a # syntax= directive naming another frontend than
// the stable Dockerfile one is not followed: Strata cannot run frontend
// images and builds with its built-in frontend, BuildKit's Dockerfile
// parser of the release it carries.
func (p *parsing) warnSyntax(syntax string, loc []parser.Range) {
	if stableFrontend.MatchString(syntax) {
		return
	}
	p.warn(locationOf(loc).Line, "SyntaxFrontend", fmt.Sprintf(
		"# syntax=%s names a frontend Strata cannot run: it builds with its built-in Dockerfile frontend (BuildKit's docker/dockerfile:1); features only that frontend has are refused", syntax))
}

// stableFrontend matches the stable Dockerfile frontend's references:
// docker/dockerfile with no tag, latest, 1, 1.x or 1.x.y, on Docker Hub
// by any spelling, with or without a digest. Labs and upstream builds
// are other frontends.
var stableFrontend = regexp.MustCompile(`^(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/)?docker/dockerfile(?::(?:latest|1(?:\.[0-9]+){0,2}))?(?:@sha256:[0-9a-f]{64})?$`)

func (p *parsing) warn(line int, rule, msg string) {
	p.g.Warnings = append(p.g.Warnings, Warning{Line: line, Rule: rule, Message: msg})
}

// warnUnusedBuildArgs mirrors Docker's "build-arg was not consumed" warning.
func (p *parsing) warnUnusedBuildArgs() {
	for _, k := range sortedKeys(p.opts.BuildArgs) {
		_, predefined := p.g.scope.global.get(k)
		// SOURCE_DATE_EPOCH and BUILDKIT_DOCKERFILE_CHECK are read by
		// Strata itself, as by BuildKit.
		if !p.argKey[k] && !predefined && !isProxyArg(k) && k != "SOURCE_DATE_EPOCH" && k != checkArg {
			p.warn(0, "UnusedBuildArg", fmt.Sprintf("build-arg %s was not consumed: no ARG declares it", k))
		}
	}
}

// quietLinter runs no check: the checks run once, in Parse.
var quietLinter = linter.New(&linter.Config{})

// parseCommand is instructions.ParseCommand with a linter that reports
// nothing: BuildKit's, with none, dereferences nil when a # check=
// comment comes right before the instruction.
func parseCommand(node *parser.Node) (instructions.Command, error) {
	v, err := instructions.ParseInstructionWithLinter(node, quietLinter)
	if err != nil {
		return nil, err
	}
	c, ok := v.(instructions.Command)
	if !ok {
		return nil, parser.WithLocation(fmt.Errorf("%T is not a command type", v), node.Location())
	}
	return c, nil
}
