package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// badCase is a build that must fail with one error line matching every pattern of want.
type badCase struct {
	name string
	// setup returns the build's arguments after the common ones (the context last).
	setup func(t *testing.T) []string
	want  []string
	// notInOutput is printed by a step after the failure, which must not run.
	notInOutput string
	// inOutput is printed by the failing step before it fails: the user must see it.
	inOutput string
}

func (e *e2eEnv) badCases() []badCase {
	ctx := func(dir string, needs ...string) func(*testing.T) []string {
		return func(t *testing.T) []string { return []string{e.context(t, dir, needs)} }
	}
	withBase := func(base, dir string) func(*testing.T) []string {
		return func(t *testing.T) []string { return []string{"--build-arg", "BASE=" + base, e.context(t, dir, nil)} }
	}
	return []badCase{
		{name: "missing context", setup: func(*testing.T) []string { return []string{"/nonexistent/strata-context"} },
			want: []string{`/nonexistent/strata-context`}},
		{name: "missing Dockerfile", setup: func(t *testing.T) []string { return []string{t.TempDir()} },
			want: []string{`Dockerfile`}},
		{name: "missing -f Dockerfile", setup: func(t *testing.T) []string {
			return []string{"-f", "/nonexistent/Dockerfile.e2e", e.context(t, "tiny", nil)}
		}, want: []string{`/nonexistent/Dockerfile\.e2e`}},
		{name: "unreachable registry", setup: withBase("127.0.0.1:1/busybox:latest", "bad-base"),
			want: []string{`127\.0\.0\.1:1`}, notInOutput: "never"},
		{name: "missing base tag", setup: withBase(e.base("busybox:no-such-tag"), "bad-base"),
			want: []string{`busybox:no-such-tag`}, notInOutput: "never"},
		{name: "missing base repository", setup: withBase(e.base("no/such/repo:1"), "bad-base"),
			want: []string{`no/such/repo`}},
		{name: "COPY source missing", setup: ctx("bad-copy-missing"), want: []string{`nothere\.txt`}},
		{name: "COPY outside the context", setup: func(t *testing.T) []string {
			dir := e.context(t, "bad-copy-escape", nil)
			writeFile(t, filepath.Join(dir, "..", "outside.txt"), "outside\n")
			return []string{dir}
		}, want: []string{`outside\.txt`}},
		{name: "COPY of a symlink out of the context", setup: func(t *testing.T) []string {
			dir := e.context(t, "bad-symlink-escape", nil)
			writeFile(t, filepath.Join(dir, "..", "outside.txt"), "outside\n")
			if err := os.Symlink("../outside.txt", filepath.Join(dir, "escape-link")); err != nil {
				t.Fatal(err)
			}
			return []string{dir}
		}, want: []string{`escape-link|outside\.txt`}},
		{name: "ADD checksum mismatch", setup: func(t *testing.T) []string {
			return []string{"--build-arg", "BASE=" + e.base("busybox:latest"), "--build-arg", "URL=" + e.fileURL,
				e.context(t, "bad-checksum", nil)}
		}, want: []string{`(?i)checksum`}},
		{name: "ADD of a URL that is not found", setup: func(t *testing.T) []string {
			return []string{"--build-arg", "BASE=" + e.base("busybox:latest"), "--build-arg", "URL=" + e.fileURL + ".missing",
				e.context(t, "add-url", nil)}
		}, want: []string{`file\.txt\.missing`, `404|(?i)not found`}},
		{name: "failing RUN", setup: withBase(e.base("busybox:latest"), "run-fails"),
			want: []string{`\b5\b`, `(?i)exit`, `\b3\b`}, inOutput: "about to fail", notInOutput: "never printed"},
		{name: "Dockerfile error", setup: ctx("dockerfile-error"),
			want: []string{`\b3\b`, `(?i)frobnicate`}},
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testBadInput runs each failing build in one store, then checks the failure left nothing
// behind and that the store still builds.
func (e *e2eEnv) testBadInput(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	for _, c := range e.badCases() {
		t.Run(c.name, func(t *testing.T) {
			mounts := mountPoints(t)
			r := e.run(nil, nil, append([]string{"build", "--progress", "plain", "--root", store,
				"-o", "type=oci,dest=" + filepath.Join(t.TempDir(), "out.tar")}, c.setup(t)...)...)
			checkFailure(t, r, c.want)
			if c.notInOutput != "" && printed(r.output(), c.notInOutput) {
				t.Errorf("output has %q, from a step after the failure:\n%s", c.notInOutput, r.output())
			}
			if c.inOutput != "" && !printed(r.output(), c.inOutput) {
				t.Errorf("output lacks %q, printed by the failing step:\n%s", c.inOutput, r.output())
			}
			e.checkLeftovers(t, mounts)
			e.checkStoreUsable(t, store)
		})
	}
	t.Run("full disk", func(t *testing.T) { e.testFullDisk(t) })
	t.Run("interrupted RUN", func(t *testing.T) { e.testInterrupt(t, syscall.SIGINT) })
	t.Run("killed builder", func(t *testing.T) { e.testInterrupt(t, syscall.SIGKILL) })
}

// checkFailure checks a build failed with exactly one `strata: ` line on stderr, matching every
// pattern in want.
func checkFailure(t *testing.T, r result, want []string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("build succeeded, want an error matching %q\n%s", want, r.output())
	}
	var errLines []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "strata: ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 {
		t.Fatalf("stderr has %d lines starting with \"strata: \", want 1:\n%s", len(errLines), r.stderr)
	}
	// One line: nothing, such as the rest of a multi-line message, follows it.
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if last := lines[len(lines)-1]; last != errLines[0] {
		t.Errorf("the error is not the last line of stderr; stderr ends with %q:\n%s", last, r.stderr)
	}
	t.Logf("error: %s", errLines[0])
	for _, w := range want {
		if !regexp.MustCompile(w).MatchString(errLines[0]) {
			t.Errorf("error %q does not match %s", errLines[0], w)
		}
	}
}

// mountPoints lists the mount points under the directories this test made (its t.TempDir()s,
// the stores, and the TMPDIR strata runs with). Mounts elsewhere are left out: the tests of
// other packages, run by the same `go test ./...`, mount and unmount their own meanwhile.
func mountPoints(t *testing.T) []string {
	t.Helper()
	ours := filepath.Join(os.TempDir(), "TestE2E")
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], ours) {
			points = append(points, f[4])
		}
	}
	slices.Sort(points)
	return points
}

// checkLeftovers checks a finished build left no mount and no strata process behind.
func (e *e2eEnv) checkLeftovers(t *testing.T, before []string) {
	t.Helper()
	if after := mountPoints(t); !slices.Equal(before, after) {
		t.Errorf("mounts changed across the build:\nbefore %q\nafter  %q", before, after)
	}
	if pids := processesOf(e.strata); len(pids) > 0 {
		t.Errorf("strata processes still running after the build: %v", pids)
	}
}

// processesOf lists the pids whose executable is exe (a RUN sandbox re-executes strata).
func processesOf(exe string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, d := range entries {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe")); err == nil && target == exe {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

// checkStoreUsable builds the tiny case in store, as the next build after a failure would.
func (e *e2eEnv) checkStoreUsable(t *testing.T, store string) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "tiny.tar")
	e.mustBuild(t, "--root", store, "-o", "type=oci,dest="+archive, e.context(t, "tiny", nil))
	ociArchiveImage(t, archive)
}

// testFullDisk gives the build a 2 MiB tmpfs as its store, too small for the busybox rootfs,
// then grows the tmpfs and checks the same store now builds the same Dockerfile.
func (e *e2eEnv) testFullDisk(t *testing.T) {
	store := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", store, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(store, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the tmpfs: %v", err)
		}
	})
	ctxDir := e.context(t, "scratch-busybox", []string{"busybox.tar.gz"})
	archive := filepath.Join(t.TempDir(), "out.tar")
	mounts := mountPoints(t)
	r := e.run(nil, nil, "build", "--progress", "plain", "--root", store, "-o", "type=oci,dest="+archive, ctxDir)
	checkFailure(t, r, []string{`(?i)no space left on device`})
	e.checkLeftovers(t, mounts)
	if err := unix.Mount("tmpfs", store, "tmpfs", unix.MS_REMOUNT, "size=256m"); err != nil {
		t.Fatalf("growing the tmpfs: %v", err)
	}
	e.mustBuild(t, "--root", store, "-o", "type=oci,dest="+archive, ctxDir)
	ociArchiveImage(t, archive)
	e.checkStoreUsable(t, store)
}
