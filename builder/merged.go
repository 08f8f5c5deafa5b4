package builder

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/strata-build/strata/internal/fsroot"
	"github.com/strata-build/strata/internal/overlayfs"
)

// mergedFS is the tree a stack of snapshot directories shows, read without
// mounting it: lowers are top-most first, whiteouts are character devices
// 0:0 and opaque directories carry trusted.overlay.opaque=y (or the
// user.overlay.opaque=y the sandbox's copy fallback writes where trusted
// xattrs cannot be set), as internal/overlayfs reads them. COPY resolves
// its destination in it and COPY --from reads its sources from it.
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
			if overlayfs.IsWhiteout(fi) {
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
		a.opaque = a.opaque || overlayfs.IsOpaque(filepath.Join(l, anc))
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
		if anc.opaque || overlayfs.IsOpaque(host) {
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
		if info, err := de.Info(); err == nil && !overlayfs.IsWhiteout(info) {
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
// The result is clean and absolute. p is walked as written, not cleaned
// as text first: a ".." after a symlink climbs from the link's target.
// The resolution is internal/fsroot's, the one every package uses.
func resolvePath(t tree, p string) (string, error) {
	return fsroot.Resolve(&resolveFS{t: t}, p)
}

// resolveFS shows a tree to fsroot by path. The resolver reads a link
// right after its lstat, so the entry of the last lstat is kept and the
// link is read through it, without looking the path up again.
type resolveFS struct {
	t    tree
	last entry
}

func (r *resolveFS) Lstat(p string) (fs.FileInfo, error) {
	e, err := r.t.lstat(p)
	if err != nil {
		return nil, err
	}
	r.last = e
	return e.info, nil
}

func (r *resolveFS) Readlink(p string) (string, error) {
	e := r.last
	if e.info == nil || e.rel != p {
		var err error
		if e, err = r.t.lstat(p); err != nil {
			return "", err
		}
	}
	return r.t.readlink(e)
}

// splitPath returns the components of p, without empty and "." ones.
func splitPath(p string) []string { return fsroot.Split(p) }
