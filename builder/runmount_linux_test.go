package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/executor"
)

// mountOf is the spec's mount on target.
func mountOf(t *testing.T, spec executor.Spec, target string) executor.Mount {
	t.Helper()
	for _, m := range spec.Mounts {
		if m.Target == target {
			return m
		}
	}
	t.Fatalf("no mount on %s in %+v", target, spec.Mounts)
	return executor.Mount{}
}

// RUN --mount=type=bind,rw: the step writes to a throwaway copy; neither
// the context nor the source stage, nor a later step's bind, sees it.
func TestBindMountReadWrite(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"src/a": "context"})
	fr := tb.runner.(*fakeRunner)
	var seen []string
	fr.inspect = func(spec executor.Spec) {
		for _, m := range spec.Mounts {
			b, _ := os.ReadFile(filepath.Join(m.Source, "a"))
			seen = append(seen, m.Target+"="+string(b))
			if m.ReadOnly {
				continue
			}
			// What a step writing to its rw mount does.
			os.WriteFile(filepath.Join(m.Source, "a"), []byte("changed"), 0o644)
			os.WriteFile(filepath.Join(m.Source, "new"), nil, 0o644)
		}
	}
	df := "FROM scratch AS st\nCOPY src/ /s/\n" +
		"FROM scratch\n" +
		"RUN --mount=type=bind,source=src,target=/c,rw noop\n" +
		"RUN --mount=type=bind,source=src,target=/c noop\n" +
		"RUN --mount=type=bind,from=st,source=/s,target=/t,readwrite=true noop\n" +
		"RUN --mount=type=bind,from=st,source=/s,target=/t noop\n" +
		"COPY --from=st /s/ /copied/\n"
	res, _ := tb.mustBuild(df)
	want := []string{"/c=context", "/c=context", "/t=context", "/t=context"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("steps saw %q, want %q: a write to a rw bind leaked", seen, want)
	}
	if b, err := os.ReadFile(filepath.Join(tb.dir, "src/a")); err != nil || string(b) != "context" {
		t.Errorf("context file after the build: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(tb.dir, "src/new")); err == nil {
		t.Error("a rw bind wrote into the context")
	}
	root := rootfs(t, res.Image)
	if b, err := os.ReadFile(filepath.Join(root, "copied/a")); err != nil || string(b) != "context" {
		t.Errorf("COPY --from the stage after a rw bind of it: %q %v, want the stage's file", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "copied/new")); err == nil {
		t.Error("a rw bind wrote into the source stage")
	}
}

// RUN --mount=type=cache,from=,source=: a new cache starts as the stage's
// tree and shows its subdirectory; a cache's content never keys the step,
// the from= tree does; caches seeded from other trees are other caches.
func TestCacheMountFromSource(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"seed/sub/f": "v1"})
	fr := tb.runner.(*fakeRunner)
	var seen []string
	var hosts []string
	fr.inspect = func(spec executor.Spec) {
		m := mountOf(t, spec, "/c")
		b, _ := os.ReadFile(filepath.Join(m.Source, "f"))
		seen = append(seen, string(b))
		hosts = append(hosts, m.Source)
		os.WriteFile(filepath.Join(m.Source, "f"), []byte(string(b)+"+"), 0o644)
	}
	df := "FROM scratch AS seed\nCOPY seed/ /\nFROM scratch\nRUN --mount=type=cache,target=/c,from=seed,source=/sub noop\n"
	tb.mustBuild(df)
	tb.mustBuild(df) // cached: the cache's content is no input
	tb.write(map[string]string{"seed/sub/f": "v2"})
	tb.mustBuild(df) // a new from= tree: a new key and a new cache
	tb.mustBuild(df + "RUN --mount=type=cache,target=/c,from=seed,source=sub noop\n")
	want := []string{"v1", "v2", "v2+"}
	if len(seen) != 3 || strings.Join(seen[:3], " ") != strings.Join(want, " ") {
		t.Errorf("steps saw %q, want %q", seen, want)
	}
	if len(hosts) == 3 && (hosts[0] == hosts[1] || hosts[1] != hosts[2]) {
		t.Errorf("cache directories %q: want one per from= tree", hosts)
	}
}

// A cache mount's source= must exist in the cache, resolved inside it:
// a symlink the cache holds cannot make it bind a host directory.
func TestCacheMountSourceInside(t *testing.T) {
	tb := newTestBuild(t, nil)
	fr := tb.runner.(*fakeRunner)
	fr.inspect = func(spec executor.Spec) {
		m := mountOf(t, spec, "/c")
		if !strings.HasPrefix(m.Source, tb.store.Root()) {
			t.Errorf("cache mount source %s is outside the store", m.Source)
		}
		os.Symlink("/", filepath.Join(m.Source, "up"))
	}
	tb.mustBuild("FROM scratch\nRUN --mount=type=cache,target=/c,id=x noop\n")
	_, _, err := tb.build("FROM scratch\nRUN --mount=type=cache,target=/c,id=x,source=up/etc noop\n")
	if err == nil || !strings.Contains(err.Error(), "source up/etc") {
		t.Errorf("source=up/etc through a symlink to /: %v, want it missing in the cache", err)
	}
	_, _, err = tb.build("FROM scratch\nRUN --mount=type=cache,target=/c,id=y,source=missing noop\n")
	if err == nil || !strings.Contains(err.Error(), "source missing") || !strings.Contains(err.Error(), "Dockerfile:2") {
		t.Errorf("missing source: %v, want an error naming it and the line", err)
	}
}
