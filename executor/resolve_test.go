package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-build/strata/internal/fsroot"
)

func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "run/systemd", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"etc/resolv.conf": "../run/systemd/resolv.conf",
		"lib":             "usr/lib",
		"escape":          "../../../../tmp",
		"abs":             "/etc",
		"loop":            "loop",
		"etc/hosts":       "/../../../etc/hosts.real",
		"via-missing":     "missing/../abs",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "/", want: ""},
		{in: "/etc/hostname", want: "etc/hostname"},
		{in: "/etc/resolv.conf", want: "run/systemd/resolv.conf"},
		{in: "/lib/x/y", want: "usr/lib/x/y"},
		{in: "/escape/x", want: "tmp/x"},
		{in: "/abs/passwd", want: "etc/passwd"},
		{in: "/../../proc", want: "proc"},
		{in: "/etc/hosts", want: "etc/hosts.real"},
		{in: "/loop", wantErr: true},
		// ".." after a missing directory must not skip resolving the symlink after it.
		{in: "/via-missing/passwd", want: "etc/passwd"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := resolveInRoot(root, tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// FuzzResolveInRoot checks that resolveInRoot is internal/fsroot's resolution of the host
// directory, with the path cleaned as text (what layer.ResolvePath gives), made relative,
// whatever the path: fsroot's FuzzDirResolveClean holds that to a reference walk and to the
// kernel's RESOLVE_IN_ROOT, so agreeing with it carries those checks over. Each result must
// also be local to the root and have no symlink among its existing components (those but the
// last being real directories), so a mount target built from it cannot land outside the root.
func FuzzResolveInRoot(f *testing.F) {
	root := f.TempDir()
	for _, d := range []string{"a/b", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/file"), nil, 0o644); err != nil {
		f.Fatal(err)
	}
	links := map[string]string{
		"up":         "../../..",
		"abs":        "/a",
		"a/b/back":   "../../up/x",
		"a/self":     ".",
		"loop":       "loop",
		"ping":       "pong/x",
		"pong":       "ping/..",
		"host":       root + "/etc",
		"via-gone":   "missing/../../up/etc",
		"etc/chain":  "../abs/b/back/../../etc/file",
		"etc/dotdot": "../../../../..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			f.Fatal(err)
		}
	}
	for _, seed := range []string{"/", "", "/up/etc", "/abs/b/back/y", "/a/self/self/b", "/../..", "a//./b/../..",
		"/loop/x", "/ping", "/host/file", "/via-gone/file/..", "/etc/chain", "/etc/dotdot/etc/dotdot/a"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := resolveInRoot(root, p)
		host, herr := fsroot.Dir(root).Resolve(fsroot.Clean(p))
		if (err != nil) != (herr != nil) {
			t.Fatalf("resolveInRoot(%q) = %q, %v; fsroot gives %q, %v", p, got, err, host, herr)
		}
		if err != nil {
			return
		}
		want, _ := filepath.Rel(root, host)
		if want == "." {
			want = ""
		}
		if got != want {
			t.Fatalf("resolveInRoot(%q) = %q; fsroot gives %q, so %q", p, got, host, want)
		}
		if got != "" && !filepath.IsLocal(got) {
			t.Fatalf("resolveInRoot(%q) = %q, outside the root", p, got)
		}
		if err := realDirsTo(root, got); err != nil {
			t.Fatalf("resolveInRoot(%q) = %q: %v", p, got, err)
		}
	})
}

// realDirsTo fails if an existing component of rel (below root) is a symlink, or is not a
// directory while more components follow it.
func realDirsTo(root, rel string) error {
	comps := fsroot.Split(rel)
	p := root
	for i, c := range comps {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink", p)
		}
		if i < len(comps)-1 && !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}
