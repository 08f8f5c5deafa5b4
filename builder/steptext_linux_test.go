package builder

import (
	"strings"
	"testing"

	"github.com/strata-build/strata/progress"
)

// Progress and errors name a RUN as written, quotes and unset variables
// kept, as BuildKit's display name; ENV values are expanded.
func TestStepTextAsWritten(t *testing.T) {
	tb := newTestBuild(t, nil)
	var rec recorder
	_, _, err := tb.build("FROM scratch\nENV V=1\nRUN write /a \"line $i\" $V\nRUN fail \"$i\"\n", func(o *Options) { o.Progress = &rec })
	if err == nil || !strings.Contains(err.Error(), `RUN fail "$i"`) {
		t.Errorf("error %v, want the failing RUN as written", err)
	}
	var names []string
	for _, e := range rec.all() {
		if s, ok := e.(progress.VertexStarted); ok {
			names = append(names, s.Name)
		}
	}
	want := []string{"[1/4] FROM scratch", "[2/4] ENV V=1", `[3/4] RUN write /a "line $i" 1`, `[4/4] RUN fail "$i"`}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("steps shown as %q, want %q", names, want)
	}
}
