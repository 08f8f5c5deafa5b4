package overlayfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestIsWhiteout(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mknod")
	}
	dir := t.TempDir()
	for name, dev := range map[string]uint64{"wh": 0, "null": unix.Mkdev(1, 3)} {
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR|0o600, int(dev)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	for name, want := range map[string]bool{"wh": true, "null": false, "file": false} {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if IsWhiteout(fi) != want || IsWhiteoutStat(&st) != want {
			t.Errorf("%s: IsWhiteout %t, IsWhiteoutStat %t; want %t", name, IsWhiteout(fi), IsWhiteoutStat(&st), want)
		}
	}
}

// TestOpaque: both forms of the marker count, by path and by descriptor, and only with the
// value "y".
func TestOpaque(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, xattr, value string
		want               bool
	}{
		{"plain", "", "", false},
		{"trusted", OpaqueXattr, "y", true},
		{"user", UserOpaqueXattr, "y", true},
		{"trusted-n", OpaqueXattr, "n", false},
		{"user-long", UserOpaqueXattr, "yes", false},
		{"user-yy", UserOpaqueXattr, "yy", false},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if c.xattr == "" {
			continue
		}
		if err := unix.Lsetxattr(p, c.xattr, []byte(c.value), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				t.Skipf("cannot set %s here: %v", c.xattr, err)
			}
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if got := IsOpaque(p); got != c.want {
			t.Errorf("IsOpaque(%s) = %t, want %t", c.name, got, c.want)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := OpaqueFD(int(f.Fd()))
		f.Close()
		if err != nil || got != c.want {
			t.Errorf("OpaqueFD(%s) = %t, %v; want %t", c.name, got, err, c.want)
		}
	}
	if IsOpaque(filepath.Join(dir, "missing")) {
		t.Error("a missing directory is opaque")
	}
}
