package dockerfile

import (
	"errors"
	"strings"
	"testing"
)

// TestErrorLocation checks that errors.As reaches *Error with the file and
// the line a user must look at, and that missing features are marked.
func TestErrorLocation(t *testing.T) {
	tests := []struct {
		name         string
		src          string
		target       string
		wantLine     int
		notSupported bool
	}{
		{"empty file", "  \n\n", "", 0, false},
		{"only comments", "# hi\n", "", 0, false},
		{"unknown instruction", "FROM a\n\nBOGUS x\n", "", 3, false},
		{"instruction before FROM", "\nRUN x\nFROM a\n", "", 2, false},
		{"no FROM", "ARG A\n", "", 0, false},
		{"copy from later stage", "FROM a\nRUN x\nCOPY --from=b / /\nFROM c AS b\n", "", 3, false},
		{"mount from itself", "FROM a AS s\nRUN --mount=from=s,target=/x true\n", "", 2, false},
		{"bad chmod in continued line", "FROM a\nCOPY \\\n  --chmod=9 a /\n", "", 2, false},
		{"error in a heredoc step", "FROM a\nRUN <<EOF\nx\nEOF\nENV A=${\n", "", 5, false},
		{"target missing", "FROM a AS b\n", "c", 0, false},
		{"device", "FROM a\nRUN --device=x true\n", "", 2, true},
		{"insecure RUN after an ARG", "FROM a\nARG T=x\nRUN --security=insecure true\n", "", 3, true},
		{"device", "FROM a\nRUN --device=x true\n", "", 2, true},
		{"bogus stop signal on an image", "FROM a\n\nSTOPSIGNAL BOGUS\n", "", 3, false},
		{"bad port on an image", "FROM a\nEXPOSE 80 abc\n", "", 2, false},
		{"bad chmod from a stage ARG on an image", "FROM a\nARG M=999\nCOPY --chmod=$M a /\n", "", 3, false},
		{"bad mount next to an image-dependent one", "FROM a\nRUN --mount=type=cache,target=/c,uid=$U --mount=type=bogus true\n", "", 2, false},
		{"insecure next to an image-dependent mount", "FROM a\nRUN --mount=type=cache,target=/c,uid=$U --security=insecure true\n", "", 2, true},
		{"checksum of a local file", "FROM a\nADD --checksum=sha256:0 f /\n", "", 2, false},
		{"trigger of a base stage copies from itself", "FROM a AS b\nONBUILD COPY --from=c / /\nFROM b AS c\n", "", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), Options{File: "ctx/Dockerfile", Target: tt.target})
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *dockerfile.Error", err, err)
			}
			if de.File != "ctx/Dockerfile" || de.Line != tt.wantLine {
				t.Errorf("error at %s:%d, want ctx/Dockerfile:%d (%v)", de.File, de.Line, tt.wantLine, err)
			}
			if got := errors.Is(err, ErrNotSupported); got != tt.notSupported {
				t.Errorf("errors.Is(ErrNotSupported) = %t, want %t (%v)", got, tt.notSupported, err)
			}
		})
	}
}

func TestGraphShape(t *testing.T) {
	g := mustParse(t, `FROM a AS one
FROM b AS two
FROM one AS three
COPY --from=two / /
FROM scratch AS unused
FROM three
RUN --mount=from=two,target=/m --mount=from=1,target=/i true
`, nil)
	var names []string
	for _, s := range g.Stages {
		names = append(names, s.DisplayName())
	}
	if want := "one two three stage-4"; strings.Join(names, " ") != want {
		t.Errorf("stages %q, want %q", strings.Join(names, " "), want)
	}
	levels := g.Levels()
	if len(levels) != 3 || len(levels[0]) != 2 {
		t.Errorf("levels: got %d, first has %d stages; want 3 and 2", len(levels), len(levels[0]))
	}
	if got := g.Stage(2).Deps; len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("stage three deps %v, want [0 1]", got)
	}
	if g.Stage(3) != nil {
		t.Error("stage unused was kept")
	}
	if g.Target.Index != 4 || g.Target.Base != (Source{Kind: SourceStage, Stage: 2}) {
		t.Errorf("target %d from %v", g.Target.Index, g.Target.Base)
	}
	// RUN --mount from= names a stage, never an index: from=1 is an image.
	mounts := g.Target.Steps[0].Mounts
	if want := []Source{{Kind: SourceStage, Stage: 1}, {Kind: SourceImage, Image: "1"}}; len(mounts) != 2 ||
		mounts[0].From != want[0] || mounts[1].From != want[1] {
		t.Errorf("mounts %+v, want from %v", mounts, want)
	}
}
