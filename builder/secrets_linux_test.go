package builder

import (
	"slices"
	"strings"
	"testing"

	"github.com/strata-build/strata/executor"
)

// TestSecretKey: a secret's value is no input of the step's key (BuildKit's rule), but
// whether an optional secret was given is, since the step then sees a file or none; the
// value reaches the step's spec (file and env=) only after the key is made.
func TestSecretKey(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	fr := &fakeRunner{}
	tb.runner = fr
	const src = "FROM scratch\nCOPY base/ /\nRUN --mount=type=secret,id=opt --mount=type=secret,id=opt,env=OPT write /out\n"
	with := func(v string) func(*Options) {
		return func(o *Options) {
			if v != "" {
				o.Secrets = map[string][]byte{"opt": []byte(v)}
			}
		}
	}
	runs := []struct {
		value  string
		reruns bool
	}{
		{"", true},        // the first build
		{"", false},       // the same
		{"first", true},   // now given: the step sees a file
		{"second", false}, // another value: BuildKit's rule
		{"", false},       // not given again: the first build's entry
	}
	for i, r := range runs {
		before := fr.count()
		tb.mustBuild(src, with(r.value))
		if got := fr.count() > before; got != r.reruns {
			t.Fatalf("build %d (secret %q): RUN ran: %v, want %v", i+1, r.value, got, r.reruns)
		}
		if !r.reruns {
			continue
		}
		spec := fr.runs[len(fr.runs)-1]
		hasFile := slices.ContainsFunc(spec.Mounts, func(m executor.Mount) bool {
			return m.Type == executor.MountFile && m.Target == "/run/secrets/opt" && string(m.Data) == r.value
		})
		hasEnv := slices.ContainsFunc(spec.Env, func(kv string) bool { return kv == "OPT="+r.value })
		if given := r.value != ""; hasFile != given || hasEnv != given {
			t.Errorf("build %d: file mount %v, env %v; want both %v", i+1, hasFile, hasEnv, given)
		}
		if strings.Contains(strings.Join(spec.Env, " "), "OPT=") && r.value == "" {
			t.Errorf("build %d: OPT set without the secret", i+1)
		}
	}
}
