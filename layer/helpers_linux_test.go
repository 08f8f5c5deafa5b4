package layer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeTime is the mtime of every file in the fixed tree.
var treeTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (devices, ownership, trusted xattrs); run the tests as root")
	}
}

// pseudoRandom returns n deterministic, incompressible bytes.
func pseudoRandom(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		sum := sha256.Sum256(append([]byte(seed), ctr[:]...))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

type node struct {
	path  string
	kind  string // file, dir, symlink, hardlink, fifo, char, block
	mode  uint32
	data  string // content, link target, or hardlink target
	uid   int
	gid   int
	dev   [2]uint32
	xattr map[string]string
}

// capNetBindService is a VFS_CAP_REVISION_2 capability set holding
// CAP_NET_BIND_SERVICE, effective.
var capNetBindService = string([]byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// fixedTree is every file type the writer handles, as root may create it.
func fixedTree() []node {
	long := strings.Repeat("long-directory-name/", 6) + "file-with-a-name-past-100-bytes"
	return []node{
		{path: "bin", kind: "dir", mode: 0o755},
		{path: "bin/tool", kind: "file", mode: 0o755, data: "#!/bin/sh\necho hi\n", xattr: map[string]string{"security.capability": capNetBindService}},
		{path: "bin/su", kind: "file", mode: 0o4755, data: "setuid"},
		{path: "bin/ln1", kind: "file", mode: 0o644, data: "linked content\n", uid: 7, gid: 8},
		{path: "data", kind: "dir", mode: 0o750},
		{path: "data/blob", kind: "file", mode: 0o600, data: string(pseudoRandom("blob", 3<<20+17))},
		{path: "data/text", kind: "file", mode: 0o644, data: strings.Repeat("hello layer\n", 5000), xattr: map[string]string{"user.comment": "kept", "user.mime_type": "text/plain"}},
		{path: "dev", kind: "dir", mode: 0o755},
		{path: "dev/null", kind: "char", mode: 0o666, dev: [2]uint32{1, 3}},
		{path: "dev/sda", kind: "block", mode: 0o660, dev: [2]uint32{8, 0}, gid: 6},
		{path: "empty", kind: "dir", mode: 0o700},
		{path: "etc", kind: "dir", mode: 0o755},
		{path: "etc/shadow", kind: "file", mode: 0o640, data: "root:*:1::::::\n", gid: 42},
		{path: "home", kind: "dir", mode: 0o755},
		{path: "home/user", kind: "dir", mode: 0o700, uid: 1000, gid: 1000},
		{path: "home/user/.profile", kind: "file", mode: 0o644, data: "export PS1='$ '\n", uid: 1000, gid: 1000},
		{path: "lib", kind: "dir", mode: 0o755},
		{path: "lib/libc.so", kind: "symlink", data: "libc.so.6"},
		{path: "lib/libc.so.6", kind: "file", mode: 0o755, data: string(pseudoRandom("libc", 1024))},
		{path: "lib/abs", kind: "symlink", data: "/etc/shadow"},
		{path: "run", kind: "dir", mode: 0o755},
		{path: "run/fifo", kind: "fifo", mode: 0o600},
		{path: "usr", kind: "dir", mode: 0o755},
		{path: "usr/bin", kind: "dir", mode: 0o755},
		{path: "usr/bin/ln2", kind: "hardlink", data: "bin/ln1"},
		{path: long, kind: "file", mode: 0o644, data: "deep\n"},
	}
}

// makeTree creates nodes under dir and sets every mtime to mtime.
func makeTree(t testing.TB, dir string, nodes []node, mtime time.Time) {
	t.Helper()
	for _, n := range nodes {
		if err := makeNode(dir, n); err != nil {
			t.Fatalf("creating %s: %v", n.path, err)
		}
	}
	setTimes(t, dir, mtime)
}

func makeNode(dir string, n node) error {
	p := filepath.Join(dir, n.path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var err error
	switch n.kind {
	case "file":
		err = os.WriteFile(p, []byte(n.data), 0o600)
	case "dir":
		err = os.Mkdir(p, 0o700)
	case "symlink":
		return os.Symlink(n.data, p)
	case "hardlink":
		return os.Link(filepath.Join(dir, n.data), p)
	case "fifo":
		err = unix.Mkfifo(p, 0o600)
	case "char", "block":
		mode := uint32(unix.S_IFCHR)
		if n.kind == "block" {
			mode = unix.S_IFBLK
		}
		err = unix.Mknod(p, mode|0o600, int(unix.Mkdev(n.dev[0], n.dev[1])))
	}
	if err != nil {
		return err
	}
	if err := os.Lchown(p, n.uid, n.gid); err != nil && os.Geteuid() == 0 {
		return err
	}
	if err := os.Chmod(p, fs.FileMode(n.mode&0o777)|modeBits(n.mode)); err != nil {
		return err
	}
	for k, v := range n.xattr {
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return nil
}

func modeBits(m uint32) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// setTimes sets the mtime of everything under dir (not dir itself).
func setTimes(t testing.TB, dir string, mtime time.Time) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	var paths []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	slices.Reverse(paths) // contents before their directory
	for _, p := range paths {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("setting times of %s: %v", p, err)
		}
	}
}

type describeOptions struct {
	noTimes bool // leave mtimes out
}

// describeTree lists everything under dir that a layer carries, one line
// per entry, in walk order: what a user would compare by hand.
func describeTree(t testing.TB, dir string, opts describeOptions) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line, err := describeEntry(p, opts)
		lines = append(lines, rel+" "+line)
		return err
	})
	if err != nil {
		t.Fatalf("describing %s: %v", dir, err)
	}
	return lines
}

func describeEntry(p string, opts describeOptions) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", err
	}
	s := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		s += fmt.Sprintf(" size=%d sha=%s nlink=%d", len(data), hex.EncodeToString(sum[:8]), st.Nlink)
	case unix.S_IFLNK:
		target, _ := os.Readlink(p)
		s += " -> " + target
	case unix.S_IFCHR, unix.S_IFBLK:
		s += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if !opts.noTimes {
		s += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
	}
	names, err := listxattr(p)
	if err != nil {
		return "", err
	}
	slices.Sort(names)
	for _, x := range names {
		if keepXattr(x) || x == overlayOpaqueXattr {
			v, _ := getxattr(p, x)
			s += fmt.Sprintf(" %s=%q", x, v)
		}
	}
	return s, nil
}

// makeWritable lets a non-root cleanup remove extracted directories whose
// modes deny writing.
func makeWritable(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
}
