// Package fsroot resolves paths inside the root of an image tree as a chroot at that root
// sees them, for every package that reads or writes one: the layer extractor and
// layer.ResolvePath (a host directory), the sandbox's mount targets (a host directory), and
// COPY (the merged view of a stack of overlay lowers, and the build context). The rule
// lives here once: symlinks are followed, the last component too; an absolute link target
// restarts at the root and ".." stops there, so no link leads outside; components that do
// not exist are kept as written and the walk goes on past them.
//
// A tree is anything that can lstat and readlink a clean absolute path inside its root (FS);
// Dir is a directory on the host.
package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxSymlinks bounds the links followed in one resolution; following one more fails with
// ELOOP. It is the limit of the resolvers image tools share (Go's filepath.EvalSymlinks,
// containerd's continuity fs.RootPath, which BuildKit's COPY uses, and
// cyphar/filepath-securejoin), not the kernel's 40: a layer or a COPY destination that
// those tools accept is accepted here too.
const MaxSymlinks = 255

// FS is a tree seen from its root. Paths are clean and absolute ("/" is the root); the
// resolver asks only for paths none of whose components but the last is a symlink (each
// was found by Lstat to be something else, or missing), and reads a link only right after
// Lstat reported one at the same path.
type FS interface {
	// Lstat describes the file at p without following a symlink at p. An error that
	// satisfies errors.Is(err, fs.ErrNotExist) means p does not exist (its name is kept and
	// the walk goes on); any other error ends the resolution with that error.
	Lstat(p string) (fs.FileInfo, error)
	// Readlink is the target of the symlink at p: a relative target is walked from p's
	// directory, an absolute one from the root.
	Readlink(p string) (string, error)
}

// Resolve resolves p in fsys the way the kernel does after a chroot to fsys's root: p's
// components are walked as written (a ".." after a symlink climbs from the link's target,
// not from the text before it), symlinks are followed, the last component too, an
// absolute target restarts at the root and ".." stops there. A component that does not
// exist is kept as written and the walk goes on: a later ".." pops it again (a missing
// directory holds no symlink), so a link target such as missing/../s still resolves s
// inside the root. The result is clean and absolute, and has no symlink among its
// existing components (which are directories but for the last), as long as nothing else
// changes the tree meanwhile. Following more than MaxSymlinks links fails with an error
// wrapping syscall.ELOOP.
func Resolve(fsys FS, p string) (string, error) {
	resolved := "/"
	pending := Split(p)
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		if c == ".." {
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, c)
		fi, err := fsys.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			// Walk on instead of appending the rest as text: the rest may hold ".." (from a
			// link target) and then a symlink that must still resolve inside the root.
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
		if hops++; hops > MaxSymlinks {
			return "", fmt.Errorf("resolving %s: %w", p, syscall.ELOOP)
		}
		target, err := fsys.Readlink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		pending = append(Split(target), pending...)
	}
	return resolved, nil
}

// Clean turns a name into a clean absolute path as text (path.Clean of "/"+name): a
// leading "/" and any ".." are confined to the root, and a ".." drops the component
// before it even when that is a symlink, as tar names and Docker's destination paths are
// read. Resolve(fsys, Clean(name)) is the resolution of an archive entry's name.
func Clean(name string) string { return path.Clean("/" + name) }

// Split returns the components of p without empty and "." ones; ".." is kept.
func Split(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// Dir is a directory on the host seen as a tree: its paths are looked up below it, never
// following a symlink at the path itself.
type Dir string

// Lstat is os.Lstat of p below d.
func (d Dir) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(d.host(p)) }

// Readlink is os.Readlink of p below d.
func (d Dir) Readlink(p string) (string, error) { return os.Readlink(d.host(p)) }

// Resolve is the host path of p resolved in d (fsroot.Resolve joined to d).
func (d Dir) Resolve(p string) (string, error) {
	r, err := Resolve(d, p)
	if err != nil {
		return "", err
	}
	return d.host(r), nil
}

func (d Dir) host(p string) string { return filepath.Join(string(d), p) }
