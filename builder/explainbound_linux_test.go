package builder

import (
	"fmt"
	"strings"
	"testing"
)

// An explain record names at most maxExplainEnv variables: every step's
// record holds the environment, so thousands of ENV made the records
// quadratic in the Dockerfile's length (470 MB for 5,000 instructions).
// Past the bound a digest stands for them, and still changes with them.
func TestExplainRecordEnvBounded(t *testing.T) {
	tb := newTestBuild(t, nil)
	dockerfile := func(last string) string {
		var src strings.Builder
		src.WriteString("FROM scratch\n")
		for i := range 3 * maxExplainEnv {
			fmt.Fprintf(&src, "ENV V%d=value%d\n", i, i)
		}
		src.WriteString("ENV LAST=" + last + "\nLABEL done=yes\n")
		return src.String()
	}
	res, _ := tb.mustBuild(dockerfile("a"))
	x := res.Steps[len(res.Steps)-1].Explain
	if x == nil {
		t.Fatal("the last step has no explain record")
	}
	if n := len(x.Inputs); n > maxExplainEnv+8 {
		t.Errorf("the last step's record has %d inputs, want at most about %d", n, maxExplainEnv)
	}
	env := x.Inputs["environment"]
	var n int
	if _, err := fmt.Sscanf(env, "%d variables, sha256:", &n); err != nil || n <= 3*maxExplainEnv {
		t.Errorf("environment input %q, want the variables' count and digest", env)
	}
	res2, _ := tb.mustBuild(dockerfile("b"))
	if env2 := res2.Steps[len(res2.Steps)-1].Explain.Inputs["environment"]; env2 == env {
		t.Errorf("the environment's digest %q did not change with a variable", env)
	}
	// A short environment is still named variable by variable.
	res3, _ := tb.mustBuild("FROM scratch\nENV A=1\nLABEL x=y\n")
	if v := res3.Steps[len(res3.Steps)-1].Explain.Inputs["env A"]; v != "1" {
		t.Errorf(`"env A" = %q, want "1"`, v)
	}
}

// Build args in scope are bounded the same way.
func TestExplainRecordArgsBounded(t *testing.T) {
	tb := newTestBuild(t, nil)
	var src strings.Builder
	src.WriteString("FROM scratch\n")
	for i := range 3 * maxExplainEnv {
		fmt.Fprintf(&src, "ARG A%d=value%d\n", i, i)
	}
	src.WriteString("LABEL done=yes\n")
	res, _ := tb.mustBuild(src.String())
	x := res.Steps[len(res.Steps)-1].Explain
	if n := len(x.Inputs); n > maxExplainEnv+8 {
		t.Errorf("the last step's record has %d inputs, want at most about %d", n, maxExplainEnv)
	}
	if !strings.Contains(x.Inputs["build args"], " in scope, sha256:") {
		t.Errorf(`"build args" = %q, want their count and digest`, x.Inputs["build args"])
	}
}
