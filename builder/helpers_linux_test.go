package builder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/store"
)

func TestMain(m *testing.M) {
	// The test binary plays the RUN sandbox's init for the real-executor test.
	if executor.IsChild() {
		executor.ChildMain()
	}
	os.Exit(m.Run())
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds chown files and snapshots keep their owners")
	}
}

// fakeRunner stands in for the sandbox: a shell-form command "write P C"
// writes C to P in the upper dir, "fail N" exits with N. It counts runs
// and records what each bind mount showed while the step ran.
type fakeRunner struct {
	mu    sync.Mutex
	runs  []executor.Spec
	binds map[string][]string // mount target -> files below its source
	// inspect, when set, sees each spec while its mounts exist.
	inspect func(executor.Spec)
}

func (f *fakeRunner) Run(_ context.Context, spec executor.Spec) (executor.Result, error) {
	f.mu.Lock()
	f.runs = append(f.runs, spec)
	if f.binds == nil {
		f.binds = map[string][]string{}
	}
	for _, m := range spec.Mounts {
		if m.Type == executor.MountBind {
			f.binds[m.Target] = listTree(m.Source)
		}
	}
	f.mu.Unlock()
	if f.inspect != nil {
		f.inspect(spec)
	}
	cmd := spec.Args[len(spec.Args)-1]
	fields := strings.Fields(cmd)
	res := executor.Result{UpperDir: spec.UpperDir}
	switch {
	case len(fields) == 2 && fields[0] == "fail":
		res.ExitCode = 7
	case len(fields) >= 2 && fields[0] == "write":
		p := filepath.Join(spec.UpperDir, fields[1])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return res, err
		}
		return res, os.WriteFile(p, []byte(strings.Join(fields[2:], " ")), 0o644)
	case cmd == "noop":
	default:
		fmt := "unknown fake command"
		return res, &os.PathError{Op: fmt, Path: cmd, Err: os.ErrInvalid}
	}
	return res, nil
}

func (f *fakeRunner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs)
}

// testBuild is a context directory and a store shared by several builds.
type testBuild struct {
	t      testing.TB
	dir    string
	store  *store.Store
	runner Runner
	epoch  *time.Time
}

func newTestBuild(t testing.TB, files map[string]string) *testBuild {
	t.Helper()
	needRoot(t)
	tb := &testBuild{t: t, dir: t.TempDir(), runner: &fakeRunner{}}
	tb.write(files)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tb.store = st
	return tb
}

// write puts files in the context; a value "->target" makes a symlink.
func (tb *testBuild) write(files map[string]string) {
	tb.t.Helper()
	for name, content := range files {
		p := filepath.Join(tb.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.t.Fatal(err)
		}
		os.Remove(p)
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else if strings.HasSuffix(name, "/") {
			err = os.MkdirAll(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			tb.t.Fatal(err)
		}
	}
}

// build builds the Dockerfile src; progress goes to the returned buffer.
func (tb *testBuild) build(src string, mod ...func(*Options)) (*Result, string, error) {
	tb.t.Helper()
	g, err := dockerfile.Parse([]byte(src), dockerfile.Options{})
	if err != nil {
		tb.t.Fatal(err)
	}
	var out bytes.Buffer
	opts := Options{Store: tb.store, Graph: g, ContextDir: tb.dir, Runner: tb.runner, Progress: textSink(&out), Epoch: tb.epoch}
	for _, m := range mod {
		m(&opts)
	}
	res, err := Build(context.Background(), opts)
	if err == nil {
		if verr := validate.Image(res.Image); verr != nil {
			tb.t.Errorf("validate.Image: %v", verr)
		}
	}
	return res, out.String(), err
}

func (tb *testBuild) mustBuild(src string, mod ...func(*Options)) (*Result, string) {
	tb.t.Helper()
	res, out, err := tb.build(src, mod...)
	if err != nil {
		tb.t.Fatalf("build: %v\n%s", err, out)
	}
	return res, out
}

// rootfs flattens the image into a directory.
func rootfs(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	if err := flatten(context.Background(), img, dir, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func configOf(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readImageFile(t *testing.T, res *Result, p string) (string, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rootfs(t, res.Image), p))
	return string(b), err
}

func ownerIDs(fi os.FileInfo) (uint32, uint32) {
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// listTree lists the paths below dir, relative and sorted.
func listTree(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}
