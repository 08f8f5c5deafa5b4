package layer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sandboxFD is the descriptor number at which the current sandbox keeps its
// top directory open. Fuzz seeds are made in one process and run in others
// (the fuzzing workers), each with its own temporary directory, so no
// absolute path of a sandbox can be written into a seed; hostAlias can.
const sandboxFD = 900

// hostAlias is an absolute path that, resolved on the host, is the current
// sandbox's top directory (a magic link to the open descriptor). An
// extractor that follows an archive's symlink to it on the host writes into
// the sandbox's host directories, where untouched sees it; one that resolves
// names inside the target, as it must, only ever sees proc/self/fd/900
// under the target.
var hostAlias = "/proc/self/fd/" + strconv.Itoa(sandboxFD)

// sandbox is a target directory among "host" directories that no
// extraction may touch: outside/ (a secret file), host/ (an etc with files
// and xattrs, a binary, a file hard-linked with outside/secret, symlinks to
// the real /etc and back up) and the target root/ itself, which holds
// symlinks pointing out of it: relative, absolute and through hostAlias.
// Sandboxes are not for parallel tests: hostAlias names the newest one.
type sandbox struct {
	base, root, outside, host string
	before                    hostState
}

// hostSentinels are real host files an escaping extractor would most want
// to write or link; the real / cannot be snapshotted, these can, cheaply.
var hostSentinels = []string{"/etc/passwd", "/etc/shadow", "/etc/hosts", "/etc/hostname"}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	base := t.TempDir()
	sb := sandbox{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside"), host: filepath.Join(base, "host")}
	t.Cleanup(func() { makeWritable(base) })
	for _, d := range []string{sb.root, sb.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hostTree := []node{
		{path: "outside/secret", kind: "file", mode: 0o644, data: "secret"},
		{path: "host/etc/passwd", kind: "file", mode: 0o644, data: "root:x:0:0:root:/root:/bin/sh\n", xattr: map[string]string{"user.host": "1"}},
		{path: "host/etc/shadow", kind: "file", mode: 0o600, data: "root:*:1::::::\n"},
		{path: "host/bin/sh", kind: "file", mode: 0o4755, data: "#!/bin/true\n"},
		{path: "host/linked", kind: "hardlink", data: "outside/secret"},
		{path: "host/real-etc", kind: "symlink", data: "/etc"},
		{path: "host/up", kind: "symlink", data: ".."},
		{path: "root/rel-escape", kind: "symlink", data: "../outside"},
		{path: "root/abs-escape", kind: "symlink", data: sb.outside},
		{path: "root/alias-escape", kind: "symlink", data: hostAlias + "/host"},
	}
	for _, n := range hostTree {
		if err := makeNode(base, n); err != nil && !(errors.Is(err, unix.ENOTSUP) && n.xattr != nil) {
			t.Fatalf("creating %s: %v", n.path, err)
		}
	}
	fd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(&os.PathError{Op: "open", Path: base, Err: err})
	}
	defer unix.Close(fd)
	if err := unix.Dup3(fd, sandboxFD, unix.O_CLOEXEC); err != nil {
		t.Fatalf("keeping the sandbox open at descriptor %d: %v", sandboxFD, err)
	}
	t.Cleanup(func() { unix.Close(sandboxFD) })
	sb.before = sb.state(t)
	return sb
}

// hostState is what an extraction into root must leave as it was.
type hostState struct {
	// tree describes every path under base except what lies inside root:
	// type, mode, owner, inode, link count, times, content hash, link
	// target, device number and every xattr. Times include ctime, which
	// any write, chmod, chown, xattr change or new hard link moves.
	tree map[string]string
	// listings are the names in /, /etc and the parent of base: a file
	// created there by following a link out of the sandbox shows up.
	listings map[string]string
	// sentinels describe hostSentinels (without ctime: the host is not
	// ours, only its content and link count are pinned).
	sentinels map[string]string
}

func (sb sandbox) state(t testing.TB) hostState {
	t.Helper()
	s := hostState{tree: map[string]string{}, listings: map[string]string{}, sentinels: map[string]string{}}
	err := filepath.WalkDir(sb.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == sb.root {
			// The target's contents are the extraction's; only the target
			// itself must stay the same directory with the same owner and
			// mode (the archive's "./" entry is not applied to it).
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return &os.PathError{Op: "lstat", Path: p, Err: err}
			}
			s.tree["root"] = fmt.Sprintf("mode=%o uid=%d gid=%d ino=%d", st.Mode, st.Uid, st.Gid, st.Ino)
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(sb.base, p)
		s.tree[rel], err = describeHostFile(p, true)
		return err
	})
	if err != nil {
		t.Fatalf("describing the sandbox: %v", err)
	}
	for _, d := range []string{"/", "/etc", filepath.Dir(sb.base)} {
		names, err := os.ReadDir(d)
		if err != nil {
			t.Fatalf("listing %s: %v", d, err)
		}
		var list []string
		for _, n := range names {
			list = append(list, n.Name())
		}
		s.listings[d] = strings.Join(list, " ")
	}
	for _, p := range hostSentinels {
		desc, err := describeHostFile(p, false)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			// Not on this host, or not readable without root (/etc/shadow).
			continue
		}
		if err != nil {
			t.Fatalf("describing %s: %v", p, err)
		}
		s.sentinels[p] = desc
	}
	return s
}

// describeHostFile says everything about p an escaping write could change.
func describeHostFile(p string, ctime bool) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	s := fmt.Sprintf("mode=%o uid=%d gid=%d ino=%d nlink=%d size=%d mtime=%d.%09d", st.Mode, st.Uid, st.Gid, st.Ino, st.Nlink, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	if ctime {
		s += fmt.Sprintf(" ctime=%d.%09d", st.Ctim.Sec, st.Ctim.Nsec)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		s += " sha256=" + hex.EncodeToString(sum[:])
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		s += " -> " + target
	case unix.S_IFCHR, unix.S_IFBLK:
		s += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	names, err := listxattr(p)
	if err != nil {
		return "", err
	}
	slices.Sort(names)
	for _, x := range names {
		v, err := getxattr(p, x)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf(" %s=%q", x, v)
	}
	return s, nil
}

// untouched fails unless nothing outside the target changed: the sandbox's
// host directories, the listings of /, /etc and the sandbox's parent, and
// the host's sentinel files are as newSandbox found them, and no file in
// the target shares its inode with a file outside it (a hard link out).
func (sb sandbox) untouched(t testing.TB) {
	t.Helper()
	after := sb.state(t)
	var diffs []string
	for _, c := range []struct {
		what          string
		before, after map[string]string
	}{
		{"sandbox path", sb.before.tree, after.tree},
		{"host directory listing", sb.before.listings, after.listings},
		{"host file", sb.before.sentinels, after.sentinels},
	} {
		diffs = append(diffs, diffStates(c.what, c.before, c.after)...)
	}
	diffs = append(diffs, sb.linksOut(t)...)
	if len(diffs) > 0 {
		t.Fatalf("extraction changed things outside the target:\n%s", strings.Join(diffs, "\n"))
	}
}

func diffStates(what string, before, after map[string]string) []string {
	var out []string
	for k, b := range before {
		switch a, ok := after[k]; {
		case !ok:
			out = append(out, fmt.Sprintf("%s %s removed (was %s)", what, k, b))
		case a != b:
			out = append(out, fmt.Sprintf("%s %s changed:\n  was %s\n  now %s", what, k, b, a))
		}
	}
	for k, a := range after {
		if _, ok := before[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s created: %s", what, k, a))
		}
	}
	slices.Sort(out)
	return out
}

// linksOut lists the files in root that have more links than root holds:
// the other names are outside the target, so a later write to the file
// inside (by a RUN step, say) would change a host file.
func (sb sandbox) linksOut(t testing.TB) []string {
	t.Helper()
	type inode struct {
		nlink uint64
		paths []string
	}
	seen := map[uint64]*inode{}
	err := filepath.WalkDir(sb.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if seen[st.Ino] == nil {
			seen[st.Ino] = &inode{nlink: st.Nlink}
		}
		seen[st.Ino].paths = append(seen[st.Ino].paths, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walking the target: %v", err)
	}
	var out []string
	for _, n := range seen {
		if n.nlink > uint64(len(n.paths)) {
			out = append(out, fmt.Sprintf("%q has %d links, %d of them in the target", n.paths, n.nlink, len(n.paths)))
		}
	}
	slices.Sort(out)
	return out
}
