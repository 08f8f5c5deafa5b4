package executor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-build/strata/internal/minirootfs"
)

func TestMain(m *testing.M) {
	// The test binary plays the sandbox init too.
	if IsChild() {
		ChildMain()
	}
	os.Exit(m.Run())
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the sandbox uses namespaces, mounts and pivot_root")
	}
}

// newBase makes a busybox rootfs to use as the bottom lower.
func newBase(t testing.TB) string {
	t.Helper()
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skipf("needs %s (Debian package busybox-static): %v", minirootfs.DefaultBusybox, err)
	}
	dir := filepath.Join(t.TempDir(), "base")
	if err := minirootfs.Make(dir, minirootfs.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// syncBuffer is a bytes.Buffer safe to write from the sandbox's output copier while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// step is one run in a test: its spec, output and result.
type step struct {
	spec           Spec
	stdout, stderr syncBuffer
	res            Result
	err            error
}

// newStep returns a spec running script with /bin/sh -c on lowers, with fresh upper and work
// dirs.
func newStep(t testing.TB, lowers []string, script string) *step {
	dir := t.TempDir()
	s := &step{spec: Spec{
		Lowers:   lowers,
		UpperDir: filepath.Join(dir, "upper"),
		WorkDir:  filepath.Join(dir, "work"),
		Args:     ShellArgs(nil, script),
	}}
	s.spec.Stdout, s.spec.Stderr = &s.stdout, &s.stderr
	return s
}

func (s *step) run(ctx context.Context, e *Executor) *step {
	s.res, s.err = e.Run(ctx, s.spec)
	return s
}

// mustRun runs the step and fails the test on an error or a non-zero exit.
func (s *step) mustRun(t testing.TB, e *Executor) *step {
	t.Helper()
	s.run(context.Background(), e)
	if s.err != nil {
		t.Fatalf("Run: %v\nstderr: %s", s.err, s.stderr.String())
	}
	if s.res.ExitCode != 0 {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", s.res.ExitCode, s.stdout.String(), s.stderr.String())
	}
	return s
}

func (s *step) out() string { return strings.TrimSpace(s.stdout.String()) }
