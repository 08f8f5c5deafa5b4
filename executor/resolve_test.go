package executor

import (
	"os"
	"path/filepath"
	"testing"
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

// FuzzResolveInRoot checks that no input path, through any of the tree's symlinks, resolves
// to somewhere outside the root.
func FuzzResolveInRoot(f *testing.F) {
	root := f.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a/b"), 0o755); err != nil {
		f.Fatal(err)
	}
	for name, target := range map[string]string{"up": "../../..", "abs": "/a", "a/b/back": "../../up/x", "a/self": "."} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			f.Fatal(err)
		}
	}
	for _, seed := range []string{"/", "/up/etc", "/abs/b/back/y", "/a/self/self/b", "/../..", "a//./b/../.."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := resolveInRoot(root, p)
		if err != nil {
			return
		}
		if got != "" && !filepath.IsLocal(got) {
			t.Errorf("resolveInRoot(%q) = %q, outside the root", p, got)
		}
	})
}
