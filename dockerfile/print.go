package dockerfile

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the graph as stable, line-oriented text: every stage
// with its base, dependencies and level, and every step with its typed,
// expanded fields. It is `strata build --print`'s output and the golden
// format of the tests.
func (g *Graph) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	g.writeHeader(bw)
	for _, s := range g.Stages {
		fmt.Fprintln(bw)
		s.writeText(bw)
	}
	if len(g.Warnings) > 0 {
		fmt.Fprintln(bw, "\nwarnings:")
		for _, wn := range g.Warnings {
			where := "build"
			if wn.Line > 0 {
				where = fmt.Sprintf("line %d", wn.Line)
			}
			fmt.Fprintf(bw, "  %s: %s: %s\n", where, wn.Rule, wn.Message)
		}
	}
	return bw.Flush()
}

func (g *Graph) writeHeader(w io.Writer) {
	fmt.Fprintf(w, "file: %s\n", g.File)
	if g.Syntax != "" {
		fmt.Fprintf(w, "syntax: %s (recorded, not used)\n", g.Syntax)
	}
	fmt.Fprintf(w, "escape: %c\n", g.Escape)
	fmt.Fprintf(w, "platform: %s (build platform %s)\n", formatPlatform(g.Platform), formatPlatform(g.BuildPlatform))
	fmt.Fprintln(w, "global args:")
	for _, a := range g.GlobalArgs {
		fmt.Fprintf(w, "  %s\n", quoteArg(a))
	}
	if len(g.ProxyEnv) > 0 {
		fmt.Fprintf(w, "proxy env: %q\n", g.ProxyEnv)
	}
	fmt.Fprintf(w, "target: %s\n", g.Target.DisplayName())
	fmt.Fprintln(w, "levels:")
	for i, level := range g.Levels() {
		names := make([]string, len(level))
		for j, s := range level {
			names[j] = s.DisplayName()
		}
		fmt.Fprintf(w, "  %d: %s\n", i, strings.Join(names, ", "))
	}
}

func (s *Stage) writeText(w io.Writer) {
	lines := s.Location
	if n := len(s.Steps); n > 0 {
		lines.EndLine = max(lines.EndLine, s.Steps[n-1].Location.EndLine)
	}
	fmt.Fprintf(w, "stage %d %s (lines %s)\n", s.Index, s.DisplayName(), lines)
	fmt.Fprintf(w, "  from: %s\n", s.describeSource(s.Base))
	if s.Platform != "" {
		fmt.Fprintf(w, "  platform: %s\n", s.Platform)
	}
	deps := make([]string, len(s.Deps))
	for i, d := range s.Deps {
		deps[i] = s.graph.all[d].DisplayName()
	}
	fmt.Fprintf(w, "  deps: [%s]\n  level: %d\n", strings.Join(deps, " "), s.Level)
	if !s.Exact {
		fmt.Fprintln(w, "  preview: base image ENV unknown, its variables kept as written")
	}
	for _, st := range s.Steps {
		fmt.Fprintf(w, "  %s: %s\n", st.Location, s.formatStep(st))
	}
	if len(s.Steps) > 0 {
		fmt.Fprintf(w, "  env: %q\n  args: %s\n", s.end.Env, quoteArgs(s.end.Args))
	}
}

func (s *Stage) describeSource(src Source) string {
	if src.Kind == SourceStage {
		return fmt.Sprintf("stage %d %s", src.Stage, s.graph.all[src.Stage].DisplayName())
	}
	return src.String()
}

func quoteArg(a Arg) string {
	if !a.HasValue {
		return a.Key
	}
	return fmt.Sprintf("%s=%q", a.Key, a.Value)
}

func quoteArgs(args []Arg) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = quoteArg(a)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
