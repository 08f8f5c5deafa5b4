package dockerfile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// link resolves the global args, each stage's base and dependencies, and
// keeps the stages the target needs.
func (p *parsing) link() error {
	targetName := p.opts.Target
	if targetName == "" {
		targetName = p.all[len(p.all)-1].Name
	}
	sc := &scope{buildArgs: p.opts.BuildArgs, escape: p.g.Escape}
	sc.global = predefinedArgs(&p.opts, targetName)
	if err := sc.resolveMetaArgs(p.opts.File, p.metas); err != nil {
		return err
	}
	p.g.scope = sc
	p.g.all = p.all
	p.g.GlobalArgs = slices.Clone(sc.global)
	for _, s := range p.all {
		if err := p.resolveFrom(s); err != nil {
			return &Error{File: p.opts.File, Line: s.Location.Line, Err: err}
		}
		if err := p.resolveDeps(s); err != nil {
			return err
		}
	}
	target, err := p.target()
	if err != nil {
		return err
	}
	p.keep(target)
	return nil
}

// resolveFrom expands the FROM line with the global args, as BuildKit does,
// and decides whether it names scratch, an earlier stage or an image.
func (p *parsing) resolveFrom(s *Stage) error {
	lex := p.g.scope.lex(false)
	env := p.g.scope.global.envGetter()
	raw := s.Base.Image
	base, _, err := lex.ProcessWord(raw, env)
	if err != nil {
		return fmt.Errorf("FROM %s: %w", raw, err)
	}
	if base == "" {
		return fmt.Errorf("FROM %s: base name should not be blank", raw)
	}
	if s.Platform != "" {
		plat, err := expandPlatform(lex, s.Platform, env)
		if err != nil {
			return err
		}
		s.platform, s.Platform = &plat, platforms.Format(plat)
	}
	if base == "scratch" {
		s.Base = Source{Kind: SourceScratch}
		return nil
	}
	// FROM matches stage names exactly (they are lower-cased), unlike
	// COPY --from, and only the stages before it: BuildKit looks the base
	// up before it registers the stage's own name, so `FROM alpine AS
	// alpine` pulls alpine and a name defined later is an image.
	if i := p.all[:s.Index].named(base); i >= 0 {
		s.Base = Source{Kind: SourceStage, Stage: i}
		return nil
	}
	if err := checkImageRef(base); err != nil {
		return fmt.Errorf("FROM %s: %w%s", base, err, p.all[:s.Index].caseHint(base))
	}
	s.Base = Source{Kind: SourceImage, Image: base}
	return nil
}

// expandPlatform expands FROM --platform with the global args and parses
// it into containerd's normal form ("Linux/x86_64" is linux/amd64).
func expandPlatform(lex *shell.Lex, raw string, env shell.EnvGetter) (specs.Platform, error) {
	v, _, err := lex.ProcessWord(raw, env)
	if err != nil {
		return specs.Platform{}, fmt.Errorf("FROM --platform=%s: %w", raw, err)
	}
	if v == "" {
		return specs.Platform{}, fmt.Errorf("FROM --platform=%s: empty platform value", raw)
	}
	plat, err := ParsePlatform(v)
	if err != nil {
		return specs.Platform{}, fmt.Errorf("FROM --platform=%s: %w", raw, err)
	}
	return plat, nil
}

// ParsePlatform parses a platform as `docker build --platform` and FROM
// --platform do: containerd's syntax (os[/arch[/variant]]), normalised, so
// "linux/arm64/v8" is linux/arm64 and a bare "linux" gets the host's
// architecture.
func ParsePlatform(s string) (specs.Platform, error) {
	p, err := platforms.Parse(s)
	if err != nil {
		return specs.Platform{}, fmt.Errorf("invalid platform: %w", err)
	}
	return platforms.Normalize(p), nil
}

func checkImageRef(ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("not a stage name nor a valid image reference: %w", err)
	}
	return nil
}

// stageList is every stage of the Dockerfile, by index.
type stageList []*Stage

// named finds a stage by its (lower-case) name; -1 if none has it. When
// several stages share the name the last one wins, as in BuildKit's
// stagesByName map.
func (all stageList) named(n string) int {
	for i := len(all) - 1; i >= 0; i-- {
		if s := all[i]; s.Name != "" && s.Name == n {
			return s.Index
		}
	}
	return -1
}

// caseHint explains why FROM did not find a stage whose name differs from
// base only in case. BuildKit lower-cases a stage's name (parseBuildStageName)
// and finds COPY --from, RUN --mount from= and --target case-insensitively
// (dispatchStates.findStateByName), but FROM's base with its exact spelling
// (dispatchStates.addState), so `FROM Builder` after `AS Builder` is an
// image, and an invalid one: an image name must be lower-case. Strata
// refuses it too; the hint says why, since COPY --from=Builder in the same
// Dockerfile does find the stage.
func (all stageList) caseHint(base string) string {
	lower := strings.ToLower(base)
	i := all.named(lower)
	if lower == base || i < 0 {
		return ""
	}
	return fmt.Sprintf(" (FROM matches stage names case-sensitively, as BuildKit does, and AS "+
		"lower-cases them: use the name %s to build on the stage of line %d)", lower, all[i].Location.Line)
}

// laterStage explains why a stage cannot use itself or a later stage: the
// run order is the Dockerfile order, so such a reference is a cycle.
// Docker would read the name as an image; Strata refuses it because it is
// almost always a mistake, and says how to get either meaning.
func (all stageList) laterStage(what string, dep, self int) error {
	name := all[dep].DisplayName()
	if dep == self {
		return fmt.Errorf("%s: stage %s cannot use itself; to use the image %s, name the stage differently",
			what, name, name)
	}
	return fmt.Errorf("%s: stage %s is defined later, on line %d; move it before this stage, "+
		"or rename it if you meant the image %s", what, name, all[dep].Location.Line, name)
}

// resolveDeps records the stages s needs: its base, COPY --from and
// RUN --mount from=, also in the ONBUILD triggers a base stage passes on,
// as BuildKit's initOnBuildTriggers does.
func (p *parsing) resolveDeps(s *Stage) error {
	deps := map[int]bool{}
	if s.Base.Kind == SourceStage {
		deps[s.Base.Stage] = true
	}
	// The nodes were parsed once to group them into stages; each pass that
	// needs typed values parses them again, because BuildKit's Expand
	// methods change a command in place and Expand must start afresh.
	for _, node := range s.nodes {
		cmd, err := parseCommand(node)
		if err != nil {
			return errorAt(p.opts.File, node.StartLine, err)
		}
		if err := p.addDeps(deps, s, cmd); err != nil {
			return &Error{File: p.opts.File, Line: node.StartLine, Err: err}
		}
	}
	if err := p.triggerDeps(deps, s); err != nil {
		return &Error{File: p.opts.File, Line: s.Location.Line, Err: err}
	}
	for i := range deps {
		s.Deps = append(s.Deps, i)
	}
	slices.Sort(s.Deps)
	return nil
}

// triggerDeps adds the sources of the ONBUILD triggers of s's base stage;
// like any trigger, an error in one is reported at s's FROM line.
func (p *parsing) triggerDeps(deps map[int]bool, s *Stage) error {
	if s.Base.Kind != SourceStage {
		return nil
	}
	for _, node := range p.all[s.Base.Stage].nodes {
		c, err := parseCommand(node)
		ob, ok := c.(*instructions.OnbuildCommand)
		if err != nil || !ok {
			continue // the base's own pass reports its errors
		}
		cmd, err := parseTrigger(ob.Expression)
		if err != nil {
			return err
		}
		if err := p.addDeps(deps, s, cmd); err != nil {
			return fmt.Errorf("ONBUILD trigger %q of the base: %w", ob.Expression, err)
		}
	}
	return nil
}

// parseTrigger parses an ONBUILD expression as BuildKit does.
func parseTrigger(expr string) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return nil, fmt.Errorf("ONBUILD trigger %q: %w", expr, err)
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("ONBUILD trigger %q must be a single instruction", expr)
	}
	cmd, err := parseCommand(res.AST.Children[0])
	if err != nil {
		return nil, fmt.Errorf("ONBUILD trigger %q: %w", expr, err)
	}
	return cmd, nil
}

func (p *parsing) addDeps(deps map[int]bool, s *Stage, cmd instructions.Command) error {
	for _, from := range fromRefs(cmd) {
		src, err := p.all.resolveSource(s.Index, from)
		if err != nil {
			return err
		}
		if src.Kind == SourceStage {
			deps[src.Stage] = true
		}
	}
	return nil
}

// fromRef is a reference to another stage or an image. COPY --from takes
// a stage index too; RUN --mount from= only takes names, as BuildKit's
// detectRunMount looks it up by name alone.
type fromRef struct {
	flag, value string
	byIndex     bool
}

// fromRefs lists the other stages or images an instruction reads from.
func fromRefs(cmd instructions.Command) []fromRef {
	var refs []fromRef
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			refs = append(refs, fromRef{"COPY --from", c.From, true})
		}
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			if m.From != "" {
				refs = append(refs, mountRef(m.From))
			}
		}
	}
	return refs
}

func mountRef(from string) fromRef {
	return fromRef{flag: "RUN --mount from", value: from}
}

// resolveSource resolves a --from value of stage self: a stage by name
// (or index, for COPY --from), else an image reference. Like BuildKit,
// variables are not allowed in it.
func (all stageList) resolveSource(self int, ref fromRef) (Source, error) {
	from := ref.value
	what := ref.flag + "=" + from
	if strings.Contains(from, "$") {
		return Source{}, fmt.Errorf("%s: variable expansion is not supported for --from, define a stage with FROM using a global ARG instead", what)
	}
	i := all.named(strings.ToLower(from))
	if n, err := strconv.Atoi(from); err == nil && ref.byIndex {
		if n < 0 || n >= len(all) {
			return Source{}, fmt.Errorf("%s: invalid stage index %d, stages are numbered 0 to %d", what, n, len(all)-1)
		}
		i = n
	}
	if i < 0 {
		if err := checkImageRef(from); err != nil {
			return Source{}, fmt.Errorf("%s: %w", what, err)
		}
		return Source{Kind: SourceImage, Image: from}, nil
	}
	if i >= self {
		return Source{}, all.laterStage(what, i, self)
	}
	return Source{Kind: SourceStage, Stage: i}, nil
}

func (p *parsing) target() (*Stage, error) {
	if p.opts.Target == "" {
		return p.all[len(p.all)-1], nil
	}
	if i := p.all.named(strings.ToLower(p.opts.Target)); i >= 0 {
		return p.all[i], nil
	}
	var names []string
	for _, s := range p.all {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	return nil, p.fileError(fmt.Errorf("target stage %q could not be found (stages: %s)",
		p.opts.Target, strings.Join(names, ", ")))
}

// keep sets Graph.Stages to the stages target needs, in Dockerfile order,
// and computes their levels.
func (p *parsing) keep(target *Stage) {
	needed := map[int]bool{target.Index: true}
	// Dependencies only point backwards, so one backward sweep finds all.
	for i := target.Index; i >= 0; i-- {
		if needed[i] {
			for _, d := range p.all[i].Deps {
				needed[d] = true
			}
		}
	}
	for _, s := range p.all[:target.Index+1] {
		if !needed[s.Index] {
			continue
		}
		for _, d := range s.Deps {
			s.Level = max(s.Level, p.all[d].Level+1)
		}
		p.g.Stages = append(p.g.Stages, s)
	}
	p.g.Target = target
}
