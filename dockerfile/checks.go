package dockerfile

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/util/suggest"
	"github.com/moby/buildkit/util/system"
)

// The build checks BuildKit's Dockerfile frontend runs once the file is
// parsed (dockerfile2llb: convert.go, convert_expose.go, validations.go),
// with its rules and messages. Those over the whole file run on every
// stage, as BuildKit's; those BuildKit runs as it dispatches an
// instruction run in the preview (stageLint), so only on the stages the
// target needs. CopyIgnoredFile needs the .dockerignore, which Parse does
// not see, and InvalidBaseImagePlatform the pulled image: neither runs.

// checkStages runs the checks BuildKit makes on every stage before it
// dispatches any: instruction casing, FROM with the default args, and the
// variables and platform of each FROM.
func (p *parsing) checkStages() {
	p.checkCasing()
	p.checkDefaultArgsInFrom()
	sc := p.g.scope
	env := sc.global.envGetter()
	// UndefinedArgInFrom knows every global ARG, also one with no value.
	known := map[string]struct{}{}
	for _, a := range sc.global {
		if a.HasValue {
			known[a.Key] = struct{}{}
		}
	}
	for _, m := range p.metas {
		for _, kv := range m.Args {
			known[kv.Key] = struct{}{}
		}
	}
	lex := sc.lex(false)
	for _, s := range p.all {
		lint := p.lint.WithMergedConfigFromComments(s.from.Comments)
		loc := s.from.Location
		if res, err := lex.ProcessWordWithMatches(s.from.BaseName, env); err == nil {
			undefinedArgsInFrom(known, res.Unmatched, loc, lint)
		}
		if s.from.Platform == "" {
			continue
		}
		res, err := lex.ProcessWordWithMatches(s.from.Platform, env)
		if err != nil {
			continue // resolveFrom refused it already
		}
		undefinedArgsInFrom(known, res.Unmatched, loc, lint)
		if len(res.Matched) == 1 && len(res.Unmatched) == 0 {
			// Only $TARGETPLATFORM, giving the target platform.
			if _, ok := res.Matched["TARGETPLATFORM"]; ok {
				if v, _ := env.Get("TARGETPLATFORM"); res.Result == v {
					lint.Run(&linter.RuleRedundantTargetPlatform, loc, linter.RuleRedundantTargetPlatform.Format(s.from.Platform))
				}
			}
		}
		if len(res.Matched) == 0 && len(res.Unmatched) == 0 {
			// A constant platform, unless the stage's name says which.
			plat, err := platforms.Parse(res.Result)
			if err == nil && !strings.Contains(s.from.Name, plat.OS) && !strings.Contains(s.from.Name, plat.Architecture) {
				lint.Run(&linter.RuleFromPlatformFlagConstDisallowed, loc, linter.RuleFromPlatformFlagConstDisallowed.Format(res.Result))
			}
		}
	}
}

// undefinedArgsInFrom reports the variables of a FROM line that no global
// ARG declares, sorted (BuildKit's order is a map's).
func undefinedArgsInFrom(known, unmatched map[string]struct{}, loc []parser.Range, lint *linter.Linter) {
	keys := slices.Collect(maps.Keys(known))
	for _, k := range slices.Sorted(maps.Keys(unmatched)) {
		if _, ok := known[k]; ok {
			continue
		}
		match, _ := suggest.Search(k, keys, true)
		lint.Run(&linter.RuleUndefinedArgInFrom, loc, linter.RuleUndefinedArgInFrom.Format(k, match))
	}
}

// checkCasing is BuildKit's ConsistentInstructionCasing: every instruction
// of every stage, FROM included (not the ARGs before the first FROM), is
// all lower or all upper case, the case most of them use.
func (p *parsing) checkCasing() {
	var lower, upper int
	count := func(name string) {
		switch name {
		case strings.ToLower(name):
			lower++
		case strings.ToUpper(name):
			upper++
		}
	}
	for _, s := range p.all {
		count(s.from.OrigCmd)
		for _, n := range s.nodes {
			count(n.Value)
		}
	}
	majorityLower := lower > upper
	check := func(name string, loc []parser.Range) {
		want := ""
		if majorityLower && strings.ToLower(name) != name {
			want = "lowercase"
		} else if !majorityLower && strings.ToUpper(name) != name {
			want = "uppercase"
		}
		if want != "" {
			p.lint.Run(&linter.RuleConsistentInstructionCasing, loc, linter.RuleConsistentInstructionCasing.Format(name, want))
		}
	}
	for _, s := range p.all {
		check(s.from.OrigCmd, s.from.Location)
		for _, n := range s.nodes {
			check(n.Value, n.Location())
		}
	}
}

// checkDefaultArgsInFrom is BuildKit's InvalidDefaultArgInFrom: each FROM,
// expanded with the global ARGs' defaults and no --build-arg, must still
// name an image, so the Dockerfile builds without build args.
func (p *parsing) checkDefaultArgsInFrom() {
	target := p.opts.Target
	if target == "" {
		target = p.all[len(p.all)-1].Name
	}
	sc := &scope{escape: p.g.Escape, global: predefinedArgs(&p.opts, target)}
	if err := sc.resolveMetaArgs(p.opts.File, p.metas); err != nil {
		return // as BuildKit: the build fails on it later, or not at all
	}
	lex, env := sc.lex(false), sc.global.envGetter()
	for _, s := range p.all {
		base, _, err := lex.ProcessWord(s.from.BaseName, env)
		if err != nil {
			return
		}
		if checkImageRef(base) != nil {
			p.lint.Run(&linter.RuleInvalidDefaultArgInFrom, s.from.Location, linter.RuleInvalidDefaultArgInFrom.Format(s.from.BaseName))
		}
	}
}

// secretName and notSecretName are BuildKit's SecretsUsedInArgOrEnv
// patterns (getSecretsRegex): a name whose first or last word, or whole,
// is one of these.
var (
	secretName    = regexp.MustCompile(`(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`)
	notSecretName = regexp.MustCompile(`(?i)(?:_|^)(?:public|file|version)(?:_|$)`)
)

// nonEnvArgs are build args BuildKit keeps out of the environment, so
// UndefinedVar does not report them.
var nonEnvArgs = []string{"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"}

// stageLint is the state of the checks BuildKit makes as it dispatches a
// stage's instructions, run by the preview of a stage the target needs.
type stageLint struct {
	p *parsing
	// exact: the stage's whole environment is known (its bases end in
	// scratch). Otherwise a variable may come from the image's ENV, and
	// UndefinedVar cannot tell.
	exact bool
	// workdirSet and shellSet carry over from a base stage, as BuildKit's
	// dispatchState.init copies the image config and workdirSet.
	workdirSet, shellSet bool
	// cmd, entrypoint and healthcheck are where each was last given in
	// this stage, nil if not: BuildKit's trackers do not carry over.
	cmd, entrypoint, healthcheck []parser.Range
	// lint and loc are the current instruction's: the checks as its
	// # check= comment configures them, and its lines.
	lint *linter.Linter
	loc  []parser.Range
}

// newStageLint starts the checks of stage s built on the stage whose
// checks ended as base (nil for an image or scratch).
func (p *parsing) newStageLint(s *Stage, base *stageLint) *stageLint {
	l := &stageLint{p: p, exact: s.Exact}
	if base != nil {
		l.workdirSet, l.shellSet = base.workdirSet, base.shellSet
	}
	return l
}

// begin sets up the checks of the instruction at node.
func (l *stageLint) begin(node *parser.Node) {
	if l == nil {
		return
	}
	l.lint, l.loc = l.p.lint.WithMergedConfigFromComments(node.PrevComment), node.Location()
}

func (l *stageLint) run(rule linter.LinterRuleI, msg string) {
	l.lint.Run(rule, l.loc, msg)
}

// undefinedVars is BuildKit's UndefinedVar: a variable an expanded word
// uses that neither the environment nor a declared ARG defines.
func (l *stageLint) undefinedVars(unmatched map[string]struct{}, x *expansion) {
	if l == nil || !l.exact || len(unmatched) == 0 {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(unmatched)) {
		if _, declared := x.args.index[k]; declared || slices.Contains(nonEnvArgs, k) {
			continue
		}
		match, _ := suggest.Search(k, x.env.Keys(), true)
		l.run(&linter.RuleUndefinedVar, linter.RuleUndefinedVar.Format(k, match))
	}
}

// after checks an instruction once expanded (cmd) as BuildKit's dispatch
// functions do; raw is the instruction as written.
func (l *stageLint) after(cmd, raw instructions.Command, x *expansion) {
	if l == nil {
		return
	}
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			if kv.NoDelim {
				l.run(&linter.RuleLegacyKeyValueFormat, linter.RuleLegacyKeyValueFormat.Format(c.Name()))
			}
			l.secret("ENV", kv.Key)
		}
	case *instructions.LabelCommand:
		for _, kv := range c.Labels {
			if kv.NoDelim {
				l.run(&linter.RuleLegacyKeyValueFormat, linter.RuleLegacyKeyValueFormat.Format(c.Name()))
			}
		}
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			l.secret("ARG", kv.Key)
		}
	case *instructions.CmdCommand:
		l.usedOnce(c.Name(), &l.cmd)
		l.jsonArgs(c.Name(), c.PrependShell)
	case *instructions.EntrypointCommand:
		l.usedOnce(c.Name(), &l.entrypoint)
		l.jsonArgs(c.Name(), c.PrependShell)
	case *instructions.HealthCheckCommand:
		l.usedOnce(c.Name(), &l.healthcheck)
	case *instructions.ShellCommand:
		l.shellSet = true
	case *instructions.WorkdirCommand:
		// Only the first WORKDIR of the stage and its bases: fixing it
		// fixes the relative ones after it.
		if !l.workdirSet && !x.unknown(raw.(*instructions.WorkdirCommand).Path) &&
			!system.IsAbs(c.Path, x.stage.TargetPlatform().OS) {
			l.run(&linter.RuleWorkdirRelativePath, linter.RuleWorkdirRelativePath.Format(c.Path))
		}
		l.workdirSet = true
	case *instructions.ExposeCommand:
		if slices.ContainsFunc(raw.(*instructions.ExposeCommand).Ports, x.unknown) {
			return // the image's ENV may change the words
		}
		for _, port := range c.Ports {
			l.expose(port)
		}
	}
}

// secret is BuildKit's SecretsUsedInArgOrEnv: an ARG or ENV whose name
// says it holds a secret, which the image config or history then keeps.
func (l *stageLint) secret(instruction, key string) {
	if secretName.MatchString(key) && !notSecretName.MatchString(key) {
		l.run(&linter.RuleSecretsUsedInArgOrEnv, linter.RuleSecretsUsedInArgOrEnv.Format(instruction, key))
	}
}

// usedOnce is BuildKit's MultipleInstructionsDisallowed, reported at the
// earlier instruction: the one that has no effect.
func (l *stageLint) usedOnce(name string, last *[]parser.Range) {
	if *last != nil {
		l.lint.Run(&linter.RuleMultipleInstructionsDisallowed, *last, linter.RuleMultipleInstructionsDisallowed.Format(name))
	}
	*last = l.loc
}

// jsonArgs is BuildKit's JSONArgsRecommended: CMD or ENTRYPOINT in shell
// form while no SHELL is set. An image's config is taken to set none, as
// Linux images do not.
func (l *stageLint) jsonArgs(name string, shellForm bool) {
	if shellForm && !l.shellSet {
		l.run(&linter.RuleJSONArgsRecommended, linter.RuleJSONArgsRecommended.Format(name))
	}
}

// expose is BuildKit's ExposeProtoCasing and ExposeInvalidFormat on one
// port as its portSpecs.parsePort splits it: [[ip:]hostport:]port[/proto].
func (l *stageLint) expose(raw string) {
	parts := strings.Split(raw, ":")
	var ip, hostPort string
	switch n := len(parts); n {
	case 1:
	case 2:
		hostPort = parts[0]
	default:
		ip, hostPort = strings.Join(parts[:n-2], ":"), parts[n-2]
	}
	port, proto, _ := strings.Cut(parts[len(parts)-1], "/")
	if port == "" || !slices.Contains([]string{"", "tcp", "udp", "sctp"}, strings.ToLower(proto)) {
		return // not a port: EXPOSE refuses it
	}
	if proto != strings.ToLower(proto) {
		l.run(&linter.RuleExposeProtoCasing, linter.RuleExposeProtoCasing.Format(raw))
	}
	if ip != "" || hostPort != "" {
		l.run(&linter.RuleExposeInvalidFormat, linter.RuleExposeInvalidFormat.Format(raw))
	}
}
