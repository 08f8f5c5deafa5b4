package executor

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// maxSymlinks bounds symlink hops like the kernel's ELOOP limit.
const maxSymlinks = 40

// resolveInRoot resolves the absolute sandbox path p against the directory root the way the
// kernel would after a chroot to root: symlinks are followed, absolute targets and ".." are
// clamped at root, so a hostile image cannot point a mount target at a host path. The result
// is relative to root ("" for root itself); missing components are kept as written.
func resolveInRoot(root, p string) (string, error) {
	pending := splitPath(p)
	resolved := ""
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		if c == ".." {
			resolved = parentOf(resolved)
			continue
		}
		next := path.Join(resolved, c)
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			// Walk on instead of appending the rest as text: a later ".." then a
			// symlink (say from a link target missing/../s) must still resolve
			// inside root. A missing directory holds no symlink to follow.
			resolved = next
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if hops++; hops > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			resolved = ""
		}
		pending = append(splitPath(target), pending...)
	}
	return resolved, nil
}

// splitPath returns the components of p without empty and "." ones; ".." is kept.
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func parentOf(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}
