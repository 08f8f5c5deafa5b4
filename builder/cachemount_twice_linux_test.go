package builder

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-build/strata/executor"
)

// One RUN may mount a cache twice, as BuildKit allows (its
// testDuplicateCacheMount). When one of the mounts needs the cache to
// itself (source=, sharing=locked), the step must not wait for the lock
// its other mount holds: it did, for ever, with no message.
func TestCacheMountTwiceInOneRun(t *testing.T) {
	tb := newTestBuild(t, nil)
	fr := tb.runner.(*fakeRunner)
	var sources map[string]string
	fr.inspect = func(spec executor.Spec) {
		sources = map[string]string{}
		for _, m := range spec.Mounts {
			sources[m.Target] = m.Source
			os.MkdirAll(filepath.Join(m.Source, "sub"), 0o755)
		}
	}
	tb.mustBuild("FROM scratch\nRUN --mount=type=cache,target=/a,id=x noop\n")
	for _, c := range []struct{ run, wantB string }{
		{"RUN --mount=type=cache,target=/a,id=x --mount=type=cache,target=/b,id=x,source=sub noop", "sub"},
		{"RUN --mount=type=cache,target=/a,id=x,source=sub --mount=type=cache,target=/b,id=x noop", ".."},
		{"RUN --mount=type=cache,target=/a,id=x,sharing=locked --mount=type=cache,target=/b,id=x,sharing=locked noop", "."},
		{"RUN --mount=type=cache,target=/a,id=x,sharing=private --mount=type=cache,target=/b,id=x,sharing=locked noop", "."},
	} {
		done := make(chan error, 1)
		go func() {
			_, _, err := tb.build("FROM scratch\n" + c.run + "\n")
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", c.run, err)
				continue
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: still waiting after 20s: the step waits for its own lock", c.run)
		}
		// Both mounts show the one cache: /b is wantB relative to /a.
		if want := filepath.Join(sources["/a"], c.wantB); sources["/b"] != want {
			t.Errorf("%s: /b binds %s, want %s (the cache /a binds)", c.run, sources["/b"], want)
		}
	}
}
