package dockerfile

import (
	"slices"
	"testing"
)

// TestStepText pins the step names progress and errors show to BuildKit's
// display names (dockerfile2llb's TestRunCustomNameKeepsEscapes and
// customname): RUN keeps its quotes, escapes and the variables its
// environment does not define as written.
func TestStepText(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []string
	}{
		{"buildkit escapes", "FROM scratch\nENV FOO=bar\n" +
			"RUN echo C:\\hello\\world\\path\n" +
			"RUN echo \"C:\\hello\\quoted\\path\"\n" +
			"RUN echo \\$FOO $FOO \"a\\\"b\"\n" +
			"RUN [\"echo\", \"C:\\\\exec\\\\path\"]\n",
			[]string{`ENV FOO=bar`, `RUN echo C:\hello\world\path`, `RUN echo "C:\hello\quoted\path"`, `RUN echo \$FOO bar "a\"b"`, `RUN ["echo", "C:\\exec\\path"]`}},
		{"backtick escape", "# escape=`\nFROM scratch\nENV FOO=bar\nRUN echo C:\\hello `$FOO $FOO\n",
			[]string{"ENV FOO=bar", "RUN echo C:\\hello `$FOO bar"}},
		{"unset variable and quotes", "FROM scratch\nrun for i in 1 2; do echo \"line $i\"; done\n",
			[]string{`RUN for i in 1 2; do echo "line $i"; done`}},
		{"flags and arg", "FROM scratch\nARG V=1\nRUN --network=none echo 'v=$V' \"$V\"\n",
			[]string{"ARG V=1", `RUN --network=none echo 'v=$V' "1"`}},
		{"continuation", "FROM scratch\nRUN echo a \\\n  \"b\"\n",
			[]string{`RUN echo a   "b"`}},
		{"heredoc", "FROM scratch\nRUN <<EOF\necho one\necho two\nEOF\nRUN cat <<EOF\nx\nEOF\n",
			[]string{"RUN <<EOF (echo one...)", "RUN cat <<EOF"}},
		{"copy expands", "FROM scratch\nENV D=/dst\ncopy a ${D}/ $D/\n",
			[]string{"ENV D=/dst", "COPY a /dst/ /dst/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := Parse([]byte(c.src), Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, st := range g.Target.Steps {
				got = append(got, g.StepText(st))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}
