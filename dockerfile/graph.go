package dockerfile

import (
	"fmt"
	"io/fs"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Graph is a parsed Dockerfile: the stages the target needs, in run order.
type Graph struct {
	// File names the Dockerfile in errors and output.
	File string
	// Syntax is the `# syntax=` directive, recorded: Strata always uses
	// its own front end, and warns when it names another (warnSyntax).
	Syntax string
	// Escape is the escape character (`# escape=`), '\\' or '`'.
	Escape rune
	// Platform is the target platform, BuildPlatform the host's.
	Platform      specs.Platform
	BuildPlatform specs.Platform
	// GlobalArgs are the args FROM lines see: the predefined platform args
	// and the ARGs before the first FROM, after --build-arg overrides. An ARG
	// declared without a value and not passed has HasValue false.
	GlobalArgs []Arg
	// ProxyEnv holds the predefined proxy args passed with --build-arg
	// (HTTP_PROXY, no_proxy, ...) as "K=V", each under both its upper- and
	// lower-case spelling as BuildKit's exec op sets them. RUN sees them in
	// its environment without a declaration, and like Docker they stay out
	// of the image history and the cache key.
	ProxyEnv []string
	// Stages are the stages the target needs, in Dockerfile order, which is
	// a valid run order: a stage only depends on stages defined before it.
	// Stages --target does not need are left out.
	Stages []*Stage
	// Target is the stage whose result is the image (the last of Stages).
	Target *Stage
	// Warnings are problems Docker tolerates: deprecated instructions,
	// unused build args, casing.
	Warnings []Warning

	scope *scope
	all   stageList
}

// Stage is one FROM and the instructions up to the next.
type Stage struct {
	// Index is the position of the stage among all stages of the
	// Dockerfile, as `COPY --from=<n>` counts them.
	Index int
	// Name is the lower-cased `AS` name, "" for an unnamed stage.
	Name string
	// Base is what the stage starts from: scratch, an image or a stage.
	Base Source
	// Platform is FROM --platform after expansion, in containerd's normal
	// form ("linux/arm64"), "" when not given. TargetPlatform parses it.
	Platform string
	// Location is the FROM line.
	Location Location
	// Deps are the indexes of the stages this one needs (its base, COPY
	// --from, RUN --mount from, also in the ONBUILD triggers of a base
	// stage), sorted, each once.
	Deps []int
	// Level is 0 for a stage that needs no other stage, else one more than
	// the highest Level among Deps. Stages of one level are independent.
	Level int
	// Steps preview the instructions, expanded with what the Dockerfile
	// alone defines. They are exact when Exact is true (the stage's chain
	// of bases ends in scratch); otherwise variables that the base image
	// may define are left as written, and values that depend on them
	// (EXPOSE ports, --chmod, STOPSIGNAL, ...) are not checked yet: Expand
	// checks them with the image's State. To build, call Expand.
	Steps []Step
	Exact bool

	nodes    []*parser.Node
	from     *instructions.Stage // the FROM as written, for the build checks
	graph    *Graph
	platform *specs.Platform // FROM --platform, parsed
	end      State           // the State after the preview's last step
}

// TargetPlatform is the platform the stage is built for: its FROM
// --platform, else the Graph's Platform.
func (s *Stage) TargetPlatform() specs.Platform {
	if s.platform != nil {
		return *s.platform
	}
	return s.graph.Platform
}

// DisplayName is the stage name, or "stage-N" as BuildKit calls an unnamed
// stage.
func (s *Stage) DisplayName() string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("stage-%d", s.Index)
}

// Stage returns the stage with the given Dockerfile index, or nil if the
// target does not need it.
func (g *Graph) Stage(index int) *Stage {
	for _, s := range g.Stages {
		if s.Index == index {
			return s
		}
	}
	return nil
}

// Levels groups the stages by Level: each group only needs the groups
// before it, and the stages of a group can be built in parallel.
func (g *Graph) Levels() [][]*Stage {
	var levels [][]*Stage
	for _, s := range g.Stages {
		for len(levels) <= s.Level {
			levels = append(levels, nil)
		}
		levels[s.Level] = append(levels[s.Level], s)
	}
	return levels
}

// SourceKind says where a stage's base or a copy's files come from.
type SourceKind int

const (
	// SourceContext is the build context (COPY without --from).
	SourceContext SourceKind = iota
	// SourceScratch is the empty filesystem (FROM scratch).
	SourceScratch
	// SourceImage is an image reference to pull.
	SourceImage
	// SourceStage is an earlier stage of the same Dockerfile.
	SourceStage
)

// Source is a stage's base, a COPY --from, or a RUN --mount from.
type Source struct {
	Kind  SourceKind
	Image string // the reference, for SourceImage
	Stage int    // the stage index, for SourceStage
}

func (s Source) String() string {
	switch s.Kind {
	case SourceScratch:
		return "scratch"
	case SourceImage:
		return "image " + s.Image
	case SourceStage:
		return fmt.Sprintf("stage %d", s.Stage)
	}
	return "context"
}

// Step is one instruction of a stage, ready for the builder's type switch.
type Step struct {
	// Command is BuildKit's typed instruction (*instructions.RunCommand,
	// *instructions.CopyCommand, ...) with ARG and ENV expanded wherever
	// Docker expands them. RUN's command line is left to the shell. A
	// relative WORKDIR path is kept as written: the builder resolves it
	// against the WORKDIR before it, or the base image's WorkingDir, as
	// BuildKit does.
	Command instructions.Command
	// Location is the instruction's line range; for an ONBUILD trigger
	// inherited from the base, the FROM line.
	Location Location
	// From is the source of COPY and ADD files (SourceContext unless
	// COPY --from is given).
	From Source
	// Mounts pairs each RUN --mount (instructions.GetMounts) with its
	// source: the context for a bind mount without from=, the named stage
	// or image otherwise.
	Mounts []Mount
	// Ports is EXPOSE's ports as the image config lists them ("80/tcp"),
	// ranges expanded.
	Ports []string
	// Mode is COPY/ADD --chmod, parsed; nil when not given.
	Mode *fs.FileMode
	// Env is the environment visible to the step, "K=V" in order: the
	// base's ENV, then ARG values and ENV as the stage set them. It is
	// what RUN runs with (plus Graph.ProxyEnv). Steps share Env's array
	// (a step that adds a key extends its predecessor's), so it is
	// read-only: copy it to change it.
	Env []string
	// Args are the build args in scope, for the history entry and the
	// cache key (Docker's `RUN |N A=1 ...`). Read-only, shared as Env.
	Args []Arg
	// OnBuild marks a trigger inherited from the base's ONBUILD.
	OnBuild bool

	// deferredFlags are the flags of a preview's RUN whose --mount uses a
	// variable of the unknown base ENV; Mounts is then empty.
	deferredFlags []string
}

// Mount is a RUN --mount with its source resolved.
type Mount struct {
	*instructions.Mount
	From Source
}

// Location is a 1-based, inclusive range of Dockerfile lines.
type Location struct {
	Line    int
	EndLine int
}

func (l Location) String() string {
	if l.EndLine > l.Line {
		return fmt.Sprintf("%d-%d", l.Line, l.EndLine)
	}
	return fmt.Sprintf("%d", l.Line)
}

func locationOf(ranges []parser.Range) Location {
	var loc Location
	for _, r := range ranges {
		if loc.Line == 0 || r.Start.Line < loc.Line {
			loc.Line = r.Start.Line
		}
		if r.End.Line > loc.EndLine {
			loc.EndLine = r.End.Line
		}
	}
	return loc
}

// Arg is a build arg with its value.
type Arg struct {
	Key      string
	Value    string
	HasValue bool
}

func (a Arg) String() string {
	if !a.HasValue {
		return a.Key
	}
	return a.Key + "=" + a.Value
}

// Warning is a problem Docker tolerates. Line is 0 when it is about the
// build as a whole.
type Warning struct {
	Line    int
	Rule    string
	Message string
}
