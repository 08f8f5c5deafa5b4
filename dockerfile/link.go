package dockerfile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
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
		if s.Platform, err = expandPlatform(lex, s.Platform, env); err != nil {
			return err
		}
	}
	if base == "scratch" {
		s.Base = Source{Kind: SourceScratch}
		return nil
	}
	// FROM matches stage names exactly (they are lower-cased), unlike
	// COPY --from; BuildKit does the same.
	if i := p.all.named(base); i >= 0 {
		if i >= s.Index {
			return p.all.laterStage("FROM "+base, i, s.Index)
		}
		s.Base = Source{Kind: SourceStage, Stage: i}
		return nil
	}
	if err := checkImageRef(base); err != nil {
		return fmt.Errorf("FROM %s: %w", base, err)
	}
	s.Base = Source{Kind: SourceImage, Image: base}
	return nil
}

func expandPlatform(lex *shell.Lex, raw string, env shell.EnvGetter) (string, error) {
	v, _, err := lex.ProcessWord(raw, env)
	if err != nil {
		return "", fmt.Errorf("FROM --platform=%s: %w", raw, err)
	}
	parts := strings.Split(v, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return "", fmt.Errorf("FROM --platform=%s: %q is not a platform of the form os/arch[/variant]", raw, v)
	}
	return v, nil
}

func checkImageRef(ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("not a stage name nor a valid image reference: %w", err)
	}
	return nil
}

// stageList is every stage of the Dockerfile, by index.
type stageList []*Stage

// named finds a stage by its (lower-case) name; -1 if none has it.
func (all stageList) named(n string) int {
	for _, s := range all {
		if s.Name != "" && s.Name == n {
			return s.Index
		}
	}
	return -1
}

// laterStage explains why a stage cannot use itself or a later stage: the
// run order is the Dockerfile order, so such a reference is a cycle.
func (all stageList) laterStage(what string, dep, self int) error {
	if dep == self {
		return fmt.Errorf("%s: stage %s cannot depend on itself (dependency cycle)", what, all[self].DisplayName())
	}
	return fmt.Errorf("%s: stage %s is defined later, on line %d; a stage can only use stages defined before it",
		what, all[dep].DisplayName(), all[dep].Location.Line)
}

// resolveDeps records the stages s needs: its base, COPY --from and
// RUN --mount from=.
func (p *parsing) resolveDeps(s *Stage) error {
	deps := map[int]bool{}
	if s.Base.Kind == SourceStage {
		deps[s.Base.Stage] = true
	}
	for _, node := range s.nodes {
		cmd, err := instructions.ParseCommand(node)
		if err != nil {
			return errorAt(p.opts.File, node.StartLine, err)
		}
		for _, from := range fromRefs(cmd) {
			src, err := p.all.resolveSource(s.Index, from.flag, from.value)
			if err != nil {
				return &Error{File: p.opts.File, Line: node.StartLine, Err: err}
			}
			if src.Kind == SourceStage {
				deps[src.Stage] = true
			}
		}
	}
	for i := range deps {
		s.Deps = append(s.Deps, i)
	}
	slices.Sort(s.Deps)
	return nil
}

type fromRef struct{ flag, value string }

// fromRefs lists the other stages or images an instruction reads from.
func fromRefs(cmd instructions.Command) []fromRef {
	var refs []fromRef
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			refs = append(refs, fromRef{"COPY --from", c.From})
		}
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			if m.From != "" {
				refs = append(refs, fromRef{"RUN --mount from", m.From})
			}
		}
	}
	return refs
}

// resolveSource resolves a --from value of stage self: an earlier stage by
// name or index, else an image reference. Like BuildKit, variables are not
// allowed in it.
func (all stageList) resolveSource(self int, flag, from string) (Source, error) {
	what := flag + "=" + from
	if strings.Contains(from, "$") {
		return Source{}, fmt.Errorf("%s: variable expansion is not supported for --from, define a stage with FROM using a global ARG instead", what)
	}
	i := all.named(strings.ToLower(from))
	if n, err := strconv.Atoi(from); err == nil {
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
