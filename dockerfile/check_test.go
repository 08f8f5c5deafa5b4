package dockerfile

import (
	"strings"
	"testing"
)

// TestSyntaxDirective: only a frontend other than the stable Dockerfile
// one gets the warning that Strata does not run it.
func TestSyntaxDirective(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	for _, c := range []struct {
		syntax string
		warn   bool
	}{
		{"docker/dockerfile:1", false},
		{"docker/dockerfile:1.7", false},
		{"docker/dockerfile:1.7.1", false},
		{"docker/dockerfile", false},
		{"docker.io/docker/dockerfile:1" + digest, false},
		{"docker/dockerfile" + digest, false},
		{"docker/dockerfile:1.7-labs", true},
		{"docker/dockerfile-upstream:master", true},
		{"docker/dockerfile:0.9", true},
		{"example.com/docker/dockerfile:1", true},
		{"tonistiigi/dockerfile:runmount", true},
	} {
		g, err := Parse([]byte("# syntax="+c.syntax+"\nFROM scratch\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range g.Warnings {
			got = append(got, w.Rule+": "+w.Message)
		}
		if warned := len(got) == 1 && strings.Contains(got[0], "SyntaxFrontend: # syntax="+c.syntax+" names a frontend Strata cannot run"); warned != c.warn || len(got) > 1 {
			t.Errorf("%s: warnings %q, want a SyntaxFrontend warning: %t", c.syntax, got, c.warn)
		}
	}
}

// TestCheckDirective: # check= skips the named rules, error=true fails
// the build on the others, and the build arg replaces the directive.
func TestCheckDirective(t *testing.T) {
	src := "FROM scratch as Build\nMAINTAINER me\n# check=skip=MaintainerDeprecated\nMAINTAINER you\n"
	for _, c := range []struct {
		name, directive, arg string
		rules                []string
		err                  string
	}{
		{"none", "", "", []string{"StageNameCasing", "FromAsCasing", "MaintainerDeprecated"}, ""},
		{"skip", "# check=skip=FromAsCasing,StageNameCasing\n", "", []string{"MaintainerDeprecated"}, ""},
		{"skip all", "# check=skip=all;error=true\n", "", nil, ""},
		{"error", "# check=skip=StageNameCasing,MaintainerDeprecated;error=true\n", "",
			nil, "Dockerfile:2: lint violation found for rules: FromAsCasing (the check configuration has error=true)\n  Dockerfile:2: FromAsCasing: 'as' and 'FROM' keywords' casing do not match"},
		{"build arg wins", "# check=error=true\n", "skip=all", nil, ""},
		{"bad build arg", "", "error=maybe", nil, "--build-arg BUILDKIT_DOCKERFILE_CHECK=error=maybe: failed to parse check option"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{BuildArgs: map[string]string{}}
			if c.arg != "" {
				opts.BuildArgs[checkArg] = c.arg
			}
			g, err := Parse([]byte(c.directive+src), opts)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var rules []string
			for _, w := range g.Warnings {
				rules = append(rules, w.Rule)
			}
			if strings.Join(rules, " ") != strings.Join(c.rules, " ") {
				t.Errorf("warnings %+v, want rules %q", g.Warnings, c.rules)
			}
			// A # check= comment before an instruction once crashed BuildKit's parser
			// when the stage was expanded.
			if _, err := g.Target.Expand(State{}); err != nil {
				t.Errorf("Expand: %v", err)
			}
		})
	}
}
