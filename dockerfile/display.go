package dockerfile

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// StepText is the instruction as progress and errors show it: BuildKit's
// display name (dockerfile2llb's customname), less the "[stage k/n]"
// prefix. It is the source text as written, instruction name upper-cased;
// for RUN, variables the step's environment defines are expanded with
// quotes and escapes kept and the others left as written ("RUN echo
// "line $i""); for COPY, ADD and WORKDIR, words are expanded as BuildKit expands
// them to name the step. A RUN that is one heredoc gets BuildKit's
// summary of it. Only the first line of a longer text is shown. Display
// only: no cache key reads it.
func (g *Graph) StepText(st Step) string {
	text := st.Command.Name()
	if s, ok := st.Command.(fmt.Stringer); ok {
		text = s.String()
	}
	lex := shell.NewLex(g.Escape)
	switch c := st.Command.(type) {
	case *instructions.RunCommand:
		if len(c.Files) > 0 && len(c.CmdLine) == 1 && c.PrependShell && parser.MustParseHeredoc(c.CmdLine[0]) != nil {
			text += " (" + summarizeHeredoc(c.Files[0].Data) + ")"
		}
		lex.RawQuotes, lex.RawEscapes, lex.SkipUnsetEnv = true, true, true
	case *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
	default:
		return shownLine(upperName(text))
	}
	if w, _, err := lex.ProcessWord(text, shell.EnvsFromSlice(st.Env)); err == nil {
		text = w
	}
	return shownLine(upperName(text))
}

// upperName upper-cases the instruction name, as BuildKit's uppercaseCmd.
func upperName(s string) string {
	name, rest, ok := strings.Cut(s, " ")
	if !ok {
		return strings.ToUpper(s)
	}
	return strings.ToUpper(name) + " " + rest
}

func shownLine(s string) string {
	if first, _, more := strings.Cut(s, "\n"); more {
		return first + " ..."
	}
	return s
}

// summarizeHeredoc is BuildKit's: the first line of the body, "..." when
// there are more.
func summarizeHeredoc(doc string) string {
	doc = strings.TrimSpace(doc)
	lines := strings.Split(strings.ReplaceAll(doc, "\r\n", "\n"), "\n")
	if len(lines) > 1 {
		return lines[0] + "..."
	}
	return lines[0]
}
