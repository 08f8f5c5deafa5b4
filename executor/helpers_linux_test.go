package executor

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
)

// writeTree makes a lower directory from path -> content; directories come from the paths.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "layer")
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// listUpper describes an upper dir one entry a line: path, type, mode, and for directories
// the opaque marker; owner when not root. Times are left out: two runs never share them.
func listUpper(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		lines = append(lines, describe(t, p, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func describe(t testing.TB, p, rel string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	switch {
	case overlayfs.IsWhiteoutStat(&st):
		return rel + " whiteout"
	case isDir(&st):
		fmt.Fprintf(&b, "%s/ dir %o", rel, st.Mode&0o7777)
		if overlayfs.IsOpaque(p) {
			b.WriteString(" opaque")
		}
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		target, _ := os.Readlink(p)
		fmt.Fprintf(&b, "%s symlink -> %s", rel, target)
	case st.Mode&unix.S_IFMT == unix.S_IFREG:
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "%s file %o", rel, st.Mode&0o7777)
		if len(data) > 0 {
			fmt.Fprintf(&b, " %q", data)
		}
		if st.Nlink > 1 {
			fmt.Fprintf(&b, " links=%d", st.Nlink)
		}
	default:
		fmt.Fprintf(&b, "%s mode %o rdev %d", rel, st.Mode, st.Rdev)
	}
	if st.Uid != 0 || st.Gid != 0 {
		fmt.Fprintf(&b, " %d:%d", st.Uid, st.Gid)
	}
	return b.String()
}

// processesWith lists host pids whose command line contains marker.
func processesWith(t testing.TB, marker string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(marker)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// ownSandboxInits lists the sandbox inits started by this test process: other programs on
// the host may run sandboxes of their own (or merely name the entry point on a command line)
// at the same time.
func ownSandboxInits(t testing.TB) []string {
	t.Helper()
	var pids []string
	ppid := "PPid:\t" + strconv.Itoa(os.Getpid()) + "\n"
	for _, pid := range processesWith(t, childArg0) {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		status, _ := os.ReadFile(filepath.Join("/proc", pid, "status"))
		if string(cmdline) == childArg0+"\x00" && bytes.Contains(status, []byte(ppid)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists the host's mounts whose mount point is under dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, line)
		}
	}
	return out
}
