package xattrs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRead lists and gets by path, through a followed link and by descriptor: values
// longer than the first buffer, empty ones (nil), missing ones (ENODATA), and a symlink at
// a path read itself, not followed.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("v", 1000) // past the first buffer, within what ext4 holds
	for name, v := range map[string]string{"user.long": long, "user.short": "s", "user.empty": ""} {
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				t.Skipf("no user xattrs here: %v", err)
			}
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "l")
	if err := os.Symlink("f", link); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for what, file := range map[string]File{"path": Path(p), "followed link": Follow(link), "descriptor": FD(int(f.Fd()))} {
		names, err := file.List()
		slices.Sort(names)
		var user []string
		for _, n := range names {
			if strings.HasPrefix(n, "user.") {
				user = append(user, n)
			}
		}
		if err != nil || !slices.Equal(user, []string{"user.empty", "user.long", "user.short"}) {
			t.Errorf("%s: List = %q, %v", what, names, err)
		}
		for name, want := range map[string]string{"user.long": long, "user.short": "s"} {
			if v, err := file.Get(name); err != nil || string(v) != want {
				t.Errorf("%s: Get(%s) = %d bytes, %v; want %d", what, name, len(v), err, len(want))
			}
		}
		if v, err := file.Get("user.empty"); err != nil || v != nil {
			t.Errorf("%s: Get(user.empty) = %q, %v; want nil", what, v, err)
		}
		if _, err := file.Get("user.missing"); !errors.Is(err, unix.ENODATA) {
			t.Errorf("%s: Get(user.missing): %v, want ENODATA", what, err)
		}
	}
	// The link itself carries no user.* xattrs (the kernel refuses them on symlinks).
	names, err := Path(link).List()
	if err != nil || slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "user.") }) {
		t.Errorf("Path(link).List = %q, %v; want the link's own", names, err)
	}
	if _, err := Path(filepath.Join(dir, "missing")).List(); !errors.Is(err, unix.ENOENT) {
		t.Errorf("List of a missing file: %v, want ENOENT", err)
	}
}
