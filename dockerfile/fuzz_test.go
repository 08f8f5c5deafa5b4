package dockerfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input panics and that every error is an *Error
// with a line, or a file-level one (Line 0) for the few whole-file problems.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(goldenDir, "*", "Dockerfile"))
	for _, path := range seeds {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src, "")
	}
	f.Add([]byte("FROM a AS b\nFROM b\nCOPY --from=b / /\n"), "b")
	f.Fuzz(func(t *testing.T, src []byte, target string) {
		g, err := Parse(src, Options{Target: target, BuildArgs: map[string]string{"A": "1"}})
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *dockerfile.Error", err, err)
			}
			if de.File != "Dockerfile" || de.Line < 0 || de.Line == 0 && !fileLevel(de) {
				t.Fatalf("error at %s:%d: %v", de.File, de.Line, err)
			}
			return
		}
		if len(g.Stages) == 0 || g.Target != g.Stages[len(g.Stages)-1] {
			t.Fatalf("graph without a target stage last")
		}
		if err := g.WriteText(discard{}); err != nil {
			t.Fatal(err)
		}
	})
}

// fileLevel reports whether err is one of the problems with no line.
func fileLevel(err *Error) bool {
	for _, prefix := range []string{
		"the Dockerfile is empty", "the Dockerfile has no instructions",
		"no FROM instruction", "target stage",
	} {
		if strings.HasPrefix(err.Err.Error(), prefix) {
			return true
		}
	}
	return false
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
