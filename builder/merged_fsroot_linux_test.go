package builder

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/fsroot"
)

// FuzzMergedResolve holds the builder's adapter to internal/fsroot: over a single lower,
// the merged view must resolve any path exactly as fsroot resolves the host directory
// (whose own fuzz tests hold it to a reference walk and the kernel), so the adapter adds
// nothing and drops nothing, and the build context's view must agree too wherever no link
// leaves it.
func FuzzMergedResolve(f *testing.F) {
	root := f.TempDir()
	// "d" a directory, "f" a file, else a symlink to the value.
	tree := []struct{ name, what string }{
		{"a", "d"}, {"a/b", "d"}, {"etc", "d"}, {"etc/file", "f"},
		{"abs", "/a"}, {"a/b/back", "../../etc/file"}, {"a/self", "."}, {"loop", "loop"},
		{"ping", "pong/x"}, {"pong", "ping/.."}, {"via-gone", "missing/../etc"}, {"rel", "a/b/../../etc"},
	}
	for _, n := range tree {
		host := filepath.Join(root, n.name)
		var err error
		switch n.what {
		case "d":
			err = os.Mkdir(host, 0o755)
		case "f":
			err = os.WriteFile(host, nil, 0o644)
		default:
			err = os.Symlink(n.what, host)
		}
		if err != nil {
			f.Fatal(err)
		}
	}
	for _, seed := range []string{"/", "/abs/b/back", "/a/self/self/b/..", "/loop/x", "/ping", "/via-gone/file",
		"/rel/../a", "/etc/file/x", "/abs/../etc", "/" + strings.Repeat("a/self/", 130) + "b"} {
		f.Add(seed)
	}
	m := mergedFS{lowers: []string{root}}
	c, err := openContext(root)
	if err != nil {
		f.Fatal(err)
	}
	defer c.close()
	f.Fuzz(func(t *testing.T, p string) {
		if strings.ContainsRune(p, 0) {
			return
		}
		want, werr := fsroot.Resolve(fsroot.Dir(root), p)
		got, err := resolvePath(m, p)
		if got != want || (err != nil) != (werr != nil) {
			// A path through a file: the merged view finds nothing there (as overlayfs
			// would not), the host directory an ENOTDIR.
			if !errors.Is(werr, syscall.ENOTDIR) {
				t.Fatalf("merged view resolves %q to %q, %v; fsroot.Dir to %q, %v", p, got, err, want, werr)
			}
		}
		if werr != nil && errors.Is(werr, syscall.ELOOP) && !errors.Is(err, syscall.ELOOP) {
			t.Fatalf("merged view resolves %q: %v, want ELOOP", p, err)
		}
		// The context refuses absolute links and "abs" is one; away from it the context
		// resolves as the host directory does.
		if strings.Contains(p, "abs") || werr != nil {
			return
		}
		if cgot, cerr := resolvePath(c, p); cerr == nil && cgot != want {
			t.Fatalf("context resolves %q to %q; fsroot.Dir to %q", p, cgot, want)
		}
	})
}

// TestMergedViewUserOpaque: a directory the sandbox's copy fallback marked opaque in the
// user namespace hides the lowers below it in the merged view too, as the trusted form
// does.
func TestMergedViewUserOpaque(t *testing.T) {
	bottom, top := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(bottom, "d/old"), filepath.Join(top, "d/new")} {
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Lsetxattr(filepath.Join(top, "d"), "user.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	m := mergedFS{lowers: []string{top, bottom}}
	if got, err := m.readDir("/d"); err != nil || !reflect.DeepEqual(got, []string{"new"}) {
		t.Errorf("readDir(/d) = %q, %v; want [new]", got, err)
	}
	if _, err := m.lstat("/d/old"); err == nil {
		t.Error("/d/old is visible under an opaque directory")
	}
}
