package builder

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMergedView reads a stack of overlay lowers the way overlayfs shows
// them: whiteouts delete, opaque directories hide what lies below, a file
// hides a directory below it, symlinks resolve inside the stack.
func TestMergedView(t *testing.T) {
	needRoot(t)
	bottom, top := t.TempDir(), t.TempDir()
	mk := func(root, p, content string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk(bottom, "etc/a", "a")
	mk(bottom, "etc/gone", "x")
	mk(bottom, "opq/old", "old")
	mk(bottom, "was-dir/inner", "i")
	mk(top, "etc/b", "b")
	mk(top, "opq/new", "new")
	mk(top, "was-dir", "now a file")
	if err := unix.Mknod(filepath.Join(top, "etc/gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(top, "opq"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("no trusted xattrs here: %v", err)
	}
	os.Symlink("/etc", filepath.Join(top, "link"))
	os.Symlink("missing/../link", filepath.Join(top, "via-missing"))
	// A directory in the top lower over a symlink in the bottom one: the
	// symlink is hidden and never followed on the host.
	mk(top, "shadow/a", "a")
	os.Symlink("/etc", filepath.Join(bottom, "shadow"))
	m := mergedFS{lowers: []string{top, bottom}}
	for dir, want := range map[string][]string{"/etc": {"a", "b"}, "/opq": {"new"}, "/": {"etc", "link", "opq", "shadow", "via-missing", "was-dir"}, "/shadow": {"a"}} {
		got, err := m.readDir(dir)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("readDir(%s) = %q, %v; want %q", dir, got, err, want)
		}
	}
	for p, exists := range map[string]bool{"/etc/a": true, "/etc/gone": false, "/opq/old": false, "/was-dir/inner": false, "/shadow/passwd": false, "/shadow/a": true} {
		if _, err := m.lstat(p); (err == nil) != exists {
			t.Errorf("lstat(%s): %v, want exists=%t", p, err, exists)
		}
	}
	// ".." after a missing directory must not skip resolving the symlink after it.
	for _, p := range []string{"/link/../../link/a", "/via-missing/a"} {
		if r, err := resolvePath(m, p); err != nil || r != "/etc/a" {
			t.Errorf("resolve(%s) = %q, %v; want /etc/a", p, r, err)
		}
	}
}
