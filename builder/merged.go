package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// maxSymlinks bounds the links followed in one lookup, like the kernel.
const maxSymlinks = 40

// mergedFS is the tree a stack of snapshot directories shows, read without
// mounting it: lowers are top-most first, whiteouts are character devices
// 0:0 and opaque directories carry trusted.overlay.opaque=y, as overlayfs
// reads them. COPY resolves its destination in it and COPY --from reads its
// sources from it.
type mergedFS struct {
	lowers []string
}

// entry is a file found in a tree: where it is on the host, what it is,
// and its clean absolute path in the tree.
type entry struct {
	host string
	info fs.FileInfo
	rel  string
}

// lstat finds the clean absolute path p, not following a symlink at p.
// Components of p must not be symlinks in the merged view (see
// resolvePath); in a single lower one may be (a directory above replaced
// it), and is then never followed on the host.
func (m mergedFS) lstat(p string) (entry, error) {
	for _, l := range m.lowers {
		anc := ancestorsIn(l, p)
		if anc.blocked {
			break
		}
		host := filepath.Join(l, p)
		fi, err := os.Lstat(host)
		if err == nil {
			if isWhiteout(fi) {
				break
			}
			return entry{host: host, info: fi, rel: p}, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return entry{}, err
		}
		if anc.opaque {
			break
		}
	}
	return entry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
}

// ancestors is what the ancestors of a path are like in one lower.
type ancestors struct {
	// blocked: one is not a directory (a file, symlink or whiteout), so the
	// path is neither in this lower nor in those below.
	blocked bool
	// opaque: one is an opaque directory, hiding the lowers below.
	opaque bool
}

func ancestorsIn(l, p string) ancestors {
	var a ancestors
	for _, anc := range parents(p) {
		fi, err := os.Lstat(filepath.Join(l, anc))
		if err != nil {
			// Nothing below a missing directory exists in this lower.
			return a
		}
		if !fi.IsDir() {
			a.blocked = true
			return a
		}
		a.opaque = a.opaque || isOpaque(filepath.Join(l, anc))
	}
	return a
}

// parents are the ancestors of p below the root, outermost first.
func parents(p string) []string {
	var out []string
	for anc := path.Dir(p); anc != "/" && anc != "."; anc = path.Dir(anc) {
		out = append(out, anc)
	}
	slices.Reverse(out)
	return out
}

// readDir lists the merged directory p, sorted by name.
func (m mergedFS) readDir(p string) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for _, l := range m.lowers {
		anc := ancestorsIn(l, p)
		if anc.blocked {
			break
		}
		host := filepath.Join(l, p)
		fi, err := os.Lstat(host)
		if err != nil {
			if anc.opaque {
				break
			}
			continue
		}
		if !fi.IsDir() {
			break
		}
		if err := addNames(host, seen, &names); err != nil {
			return nil, err
		}
		if anc.opaque || isOpaque(host) {
			break
		}
	}
	slices.Sort(names)
	return names, nil
}

// addNames adds the entries of host not seen in an upper lower; a
// whiteout is seen (it hides the name below) but not listed.
func addNames(host string, seen map[string]bool, names *[]string) error {
	des, err := os.ReadDir(host)
	if err != nil {
		return err
	}
	for _, de := range des {
		if seen[de.Name()] {
			continue
		}
		seen[de.Name()] = true
		if info, err := de.Info(); err == nil && !isWhiteout(info) {
			*names = append(*names, de.Name())
		}
	}
	return nil
}

// readFile reads the file at p, following symlinks inside the tree.
func (m mergedFS) readFile(p string) ([]byte, error) {
	r, err := resolvePath(m, p)
	if err != nil {
		return nil, err
	}
	e, err := m.lstat(r)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(e.host)
}

func (m mergedFS) readlink(e entry) (string, error) { return os.Readlink(e.host) }

func (m mergedFS) linkTarget(e entry) (string, error) { return os.Readlink(e.host) }

// open opens a file of the tree; snapshots are strata's own, so host paths
// are safe to use, but a symlink is still never followed.
func (m mergedFS) open(e entry) (*os.File, error) {
	return os.OpenFile(e.host, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

// tree is what path resolution needs from a filesystem.
type tree interface {
	lstat(p string) (entry, error)
	readlink(e entry) (string, error)
}

// resolvePath resolves the absolute path p in t the way the kernel does
// after a chroot to t's root: symlinks are followed (the last component
// too), absolute targets restart at the root and ".." stops there, so a
// link can never lead outside. Missing components are kept as written.
// The result is clean and absolute.
func resolvePath(t tree, p string) (string, error) {
	resolved := "/"
	pending := splitPath(p)
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		if c == ".." {
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, c)
		e, err := t.lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			// Walk on instead of appending the rest as text: a later ".." then a
			// symlink (say from a link target missing/../s) must still resolve
			// inside the root. A missing directory holds no symlink to follow.
			resolved = next
			continue
		}
		if err != nil {
			return "", err
		}
		if e.info.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if hops++; hops > maxSymlinks {
			return "", fmt.Errorf("resolving %s: %w", p, syscall.ELOOP)
		}
		target, err := t.readlink(e)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		pending = append(splitPath(target), pending...)
	}
	return resolved, nil
}

// splitPath returns the components of p, without empty and "." ones.
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}
