package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
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
	if syntax, _, _, ok := parser.DetectSyntax(src); ok {
		p.g.Syntax = syntax
	}
	if err := p.parse(src); err != nil {
		return nil, err
	}
	if err := p.link(); err != nil {
		return nil, err
	}
	if err := p.preview(); err != nil {
		return nil, err
	}
	p.warnUnusedBuildArgs()
	return p.g, nil
}

// parsing is the state of one Parse call.
type parsing struct {
	opts   Options
	g      *Graph
	all    stageList // every stage, kept or not, by index
	metas  []*instructions.ArgCommand
	argKey map[string]bool // every ARG name declared anywhere
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
		p.warn(w.Location.Start.Line, "NoEmptyContinuation", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: p.lintWarning})
	p.argKey = map[string]bool{}
	for _, node := range res.AST.Children {
		if err := p.instruction(node, lint); err != nil {
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
		p.warn(loc.Line, linter.RuleDuplicateStageName.Name, linter.RuleDuplicateStageName.Format(c.Name))
	}
	p.all = append(p.all, &Stage{
		Index:    len(p.all),
		Name:     c.Name,
		Location: loc,
		Base:     Source{Kind: SourceImage, Image: c.BaseName},
		Platform: c.Platform,
		graph:    p.g,
	})
	return nil
}

func (p *parsing) lintWarning(rule, _, _, msg string, loc []parser.Range) {
	p.warn(locationOf(loc).Line, rule, msg)
}

func (p *parsing) warn(line int, rule, msg string) {
	p.g.Warnings = append(p.g.Warnings, Warning{Line: line, Rule: rule, Message: msg})
}

// warnUnusedBuildArgs mirrors Docker's "build-arg was not consumed" warning.
func (p *parsing) warnUnusedBuildArgs() {
	for _, k := range sortedKeys(p.opts.BuildArgs) {
		_, predefined := p.g.scope.global.get(k)
		// SOURCE_DATE_EPOCH is read by the builder itself, as by BuildKit.
		if !p.argKey[k] && !predefined && !isProxyArg(k) && k != "SOURCE_DATE_EPOCH" {
			p.warn(0, "UnusedBuildArg", fmt.Sprintf("build-arg %s was not consumed: no ARG declares it", k))
		}
	}
}
