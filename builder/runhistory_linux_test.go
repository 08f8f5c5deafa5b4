package builder

import (
	"testing"

	"github.com/strata-build/strata/dockerfile"
)

// TestRunHistoryArgValues builds RUNs whose build args the environment
// overrides or fills in: BuildKit's history reads each arg's value from
// the RUN's environment first (dockerfile2llb's runCommandString).
func TestRunHistoryArgValues(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		buildArgs map[string]string
		want      string
	}{
		{"ENV after ARG", "FROM scratch\nARG X=1\nENV X=2\nRUN write /o 1\n", nil,
			"RUN |1 X=2 /bin/sh -c write /o 1 # buildkit"},
		{"ARG again without a value", "FROM scratch\nARG X=1\nARG X\nRUN write /o 1\n", nil,
			"RUN |1 X=1 /bin/sh -c write /o 1 # buildkit"},
		{"ENV wins over --build-arg", "FROM scratch\nARG X=1\nENV X=2\nRUN write /o 1\n", map[string]string{"X": "b"},
			"RUN |1 X=2 /bin/sh -c write /o 1 # buildkit"},
		{"ARG without a value sees the base's ENV", "FROM scratch AS base\nENV X=base\nFROM base\nARG X\nRUN write /o 1\n", nil,
			"RUN |1 X=base /bin/sh -c write /o 1 # buildkit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTestBuild(t, nil)
			res, out := tb.mustBuild(c.src, func(o *Options) {
				g, err := dockerfile.Parse([]byte(c.src), dockerfile.Options{BuildArgs: c.buildArgs})
				if err != nil {
					t.Fatal(err)
				}
				o.Graph = g
			})
			h := configOf(t, res.Image).History
			if got := h[len(h)-1].CreatedBy; got != c.want {
				t.Errorf("created_by %q, want %q\n%s", got, c.want, out)
			}
		})
	}
}
