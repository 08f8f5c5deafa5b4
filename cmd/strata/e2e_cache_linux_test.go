package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testReproducible builds one input in two empty stores, once with --source-date-epoch and
// once with SOURCE_DATE_EPOCH in the environment, touching the context in between.
func (e *e2eEnv) testReproducible(t *testing.T) {
	ctxDir := e.context(t, "repro", []string{"busybox.tar.gz"})
	base := "BASE=" + e.base("busybox:latest")
	build := func(env []string, flags ...string) string {
		out := t.TempDir()
		args := append([]string{"build", "--progress", "plain", "--root", filepath.Join(out, "store"),
			"--build-arg", base, "--iidfile", filepath.Join(out, "iid"),
			"-o", "type=oci,dest=" + filepath.Join(out, "image.tar")}, flags...)
		r := e.run(nil, env, append(args, ctxDir)...)
		if r.err != nil {
			t.Fatalf("strata build: %v\n%s", r.err, r.output())
		}
		img, _ := ociArchiveImage(t, filepath.Join(out, "image.tar"))
		if got := configOf(t, img).Created.Unix(); got != 1700000000 {
			t.Errorf("config created at %d, want SOURCE_DATE_EPOCH 1700000000", got)
		}
		return readDigest(t, filepath.Join(out, "iid"))
	}
	first := build(nil, "--source-date-epoch", epoch)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(ctxDir, "file.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	if second := build([]string{"SOURCE_DATE_EPOCH=" + epoch}); second != first {
		t.Errorf("two builds with SOURCE_DATE_EPOCH=%s in empty stores gave %s and %s", epoch, first, second)
	}
}

// step is one build step as plain progress shows it.
type step struct {
	instruction string
	cached      bool
}

var stepHeader = regexp.MustCompile(`^#(\d+) \[[^\]]*\d+/\d+\] (.*)$`)

// parseSteps reads the `#N [k/n] INSTRUCTION` headers of plain progress and whether any line of
// step N says CACHED.
func parseSteps(out string) map[string]*step {
	byNum := map[string]*step{}
	for _, l := range strings.Split(out, "\n") {
		if m := stepHeader.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			byNum[m[1]] = &step{instruction: m[2]}
		}
	}
	for _, l := range strings.Split(out, "\n") {
		num, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(l), "#"), " ")
		if s := byNum[num]; ok && s != nil && regexp.MustCompile(`\bCACHED\b`).MatchString(rest) {
			s.cached = true
		}
	}
	return byNum
}

// cacheBuild is one build of the cache case and what its progress said.
type cacheBuild struct {
	digest string
	output string
	steps  map[string]*step
}

// cached reports whether the step whose instruction contains sub was a cache hit; the test
// fails if no such step was shown.
func (b cacheBuild) cached(t *testing.T, sub string) bool {
	t.Helper()
	for _, s := range b.steps {
		if strings.Contains(s.instruction, sub) {
			return s.cached
		}
	}
	t.Fatalf("no step %q in the progress output:\n%s", sub, b.output)
	return false
}

// layerSteps are the cache case's steps that make layers, by a part of their instruction.
var layerSteps = []string{`run-one-output`, `COPY a.txt`, `run-two-output`, `COPY . /ctx/`}

// testCache checks a second build in one store runs nothing, an edit rebuilds from the step
// that copies the file, and an edit of a .dockerignore'd file rebuilds nothing.
func (e *e2eEnv) testCache(t *testing.T) {
	ctxDir := e.context(t, "cache", nil)
	store := filepath.Join(t.TempDir(), "store")
	build := func(flags ...string) cacheBuild {
		iid := filepath.Join(t.TempDir(), "iid")
		args := append([]string{"--root", store, "--source-date-epoch", epoch, "--build-arg",
			"BASE=" + e.base("busybox:latest"), "--iidfile", iid}, flags...)
		r := e.mustBuild(t, append(args, ctxDir)...)
		return cacheBuild{digest: readDigest(t, iid), output: r.output(), steps: parseSteps(r.output())}
	}
	first := build()
	expectRuns(t, "first build", first, true, true)
	expectCached(t, "first build", first, false, false, false, false)

	again := build()
	expectRuns(t, "second build", again, false, false)
	expectCached(t, "second build", again, true, true, true, true)
	sameDigest(t, "second build", again, first)

	writeFile(t, filepath.Join(ctxDir, "a.txt"), "a version 2\n")
	edited := build()
	expectRuns(t, "build after editing a.txt", edited, false, true)
	expectCached(t, "build after editing a.txt", edited, true, false, false, false)
	if edited.digest == first.digest {
		t.Errorf("editing a.txt left the image digest at %s", first.digest)
	}

	writeFile(t, filepath.Join(ctxDir, "ignored.txt"), "ignored version 2\n")
	ignored := build()
	expectRuns(t, "build after editing ignored.txt", ignored, false, false)
	expectCached(t, "build after editing ignored.txt", ignored, true, true, true, true)
	sameDigest(t, "build after editing ignored.txt", ignored, edited)

	// Same size, same mtime, new content: only a cache that looks at more than size and
	// mtime (content, or ctime and inode) sees the edit.
	sneaky := sameStatEdit(t, filepath.Join(ctxDir, "a.txt"), "a version 3\n")
	stale := build()
	expectRuns(t, "build after a same-size, same-mtime edit of a.txt", stale, false, true)
	expectCached(t, "build after a same-size, same-mtime edit of a.txt", stale, true, false, false, false)
	if stale.digest == edited.digest {
		t.Errorf("the cache served the old a.txt after a same-size, same-mtime edit (%s)", sneaky)
	}
	writeFile(t, filepath.Join(ctxDir, "a.txt"), "a version 2\n")

	fresh := build("--no-cache")
	expectRuns(t, "--no-cache build", fresh, true, true)
	expectCached(t, "--no-cache build", fresh, false, false, false, false)
	sameDigest(t, "--no-cache build", fresh, edited)
}

// expectRuns checks which RUN steps printed their output, i.e. ran.
func expectRuns(t *testing.T, what string, b cacheBuild, one, two bool) {
	t.Helper()
	for name, want := range map[string]bool{"run-one-output": one, "run-two-output": two} {
		ran := printed(b.output, name)
		if ran != want {
			t.Errorf("%s: RUN printing %s ran=%v, want %v:\n%s", what, name, ran, want, b.output)
		}
	}
}

// expectCached checks which of layerSteps were cache hits.
func expectCached(t *testing.T, what string, b cacheBuild, want ...bool) {
	t.Helper()
	for i, sub := range layerSteps {
		if got := b.cached(t, sub); got != want[i] {
			t.Errorf("%s: step %q CACHED=%v, want %v:\n%s", what, sub, got, want[i], b.output)
		}
	}
}

func sameDigest(t *testing.T, what string, got, want cacheBuild) {
	t.Helper()
	if got.digest != want.digest {
		t.Errorf("%s made %s, want the same image as before, %s", what, got.digest, want.digest)
	}
}

// printed reports whether a RUN step printed word: some line has it without the `echo` of the
// step header that names the command.
func printed(out, word string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, word) && !strings.Contains(l, "echo") {
			return true
		}
	}
	return false
}

// testPullOnce checks a base layer is fetched into a store once: a second build, even with
// --no-cache, asks the registry for no layer blob (it may ask where the tag points now).
func (e *e2eEnv) testPullOnce(t *testing.T) {
	ctxDir := e.context(t, "pull-once", nil)
	store := filepath.Join(t.TempDir(), "store")
	b, err := os.ReadFile(e.busybox)
	if err != nil {
		t.Fatal(err)
	}
	blobGet := fmt.Sprintf("GET /v2/pullonce/blobs/sha256:%x", sha256.Sum256(b))
	args := []string{"--root", store, "--build-arg", "BASE=" + e.base("pullonce:latest"), ctxDir}
	e.mustBuild(t, args...)
	first := strings.Count(e.regLog.String(), blobGet)
	if first == 0 {
		t.Fatalf("the registry's access log has no %q after the first build:\n%s", blobGet, e.regLog.String())
	}
	e.mustBuild(t, append([]string{"--no-cache"}, args...)...)
	if again := strings.Count(e.regLog.String(), blobGet) - first; again != 0 {
		t.Errorf("the second build fetched the base layer %d more times", again)
	}
}

// sameStatEdit rewrites path with content of the same size and puts its mtime back.
func sameStatEdit(t *testing.T, path, content string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len(content)) {
		t.Fatalf("%s has %d bytes; the edit must keep the size", path, fi.Size())
	}
	writeFile(t, path, content)
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("size %d, mtime %v", fi.Size(), fi.ModTime())
}
