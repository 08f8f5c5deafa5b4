package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/durable"
	"github.com/strata-build/strata/internal/overlayfs"
)

// adoptPlan collects, during the one tar walk, what must change on disk for
// the written tree to equal what extracting its stream in OverlayLower mode
// gives: the tree is then renamed into snapshots/ instead of being
// extracted again from the blob.
type adoptPlan struct {
	// refused is why the tree cannot become its snapshot (extraction
	// would fail, or it shares inodes with files outside it).
	refused error
	fixes   []fix
	dirs    []fix // directory mtimes, set last, deepest first
	// links counts the names seen of each multiply-linked inode; an inode
	// with more links than names is shared with a file outside the tree.
	links map[inode]*linkCount
}

const selinuxXattr = "security.selinux"

type linkCount struct{ seen, nlink uint64 }

// fix is one entry's change; name is relative to the tree's root.
type fix struct {
	name     string
	mtime    *time.Time // set mtime and atime to it
	drop     []string   // xattrs that are not in the stream
	opaque   bool       // overlay's own opaque marker
	whiteout bool       // a fresh char device 0:0, as extraction makes
	remove   bool       // not in the stream at all (sockets)
}

// maxAdoptEntries bounds the plan's memory (about 100 bytes an entry): a
// larger tree is extracted from its blob like any other layer.
const maxAdoptEntries = 200_000

func newAdoptPlan() *adoptPlan { return &adoptPlan{links: map[inode]*linkCount{}} }

// full refuses adoption once the tree has too many entries, and frees what
// was recorded so far.
func (p *adoptPlan) full() bool {
	if len(p.fixes) < maxAdoptEntries {
		return false
	}
	p.refuse(fmt.Errorf("more than %d entries", maxAdoptEntries))
	p.fixes, p.dirs, p.links = nil, nil, nil
	return true
}

// entry records what a written entry needs; the opaque marker and the
// xattrs to drop are added while the entry's xattrs are read.
func (p *adoptPlan) entry(c *child, mtime time.Time) {
	f := fix{name: c.name}
	if c.st.Mode&unix.S_IFMT == unix.S_IFDIR {
		// Always: removing a socket or replacing a whiteout inside moves it.
		p.dirs = append(p.dirs, fix{name: c.name, mtime: &mtime})
	} else {
		// Always, not only when the mtime differs: extraction sets atime to
		// the mtime too, and reading the file for the tar moved its atime.
		f.mtime = &mtime
	}
	p.fixes = append(p.fixes, f)
}

// current is the fix of the entry being written.
func (p *adoptPlan) current() *fix { return &p.fixes[len(p.fixes)-1] }

// dropXattr records an xattr the stream leaves out. Overlay's opaque
// marker stays on an opaque directory; an SELinux label stays too, since
// the host labels every file it creates, extracted ones as well.
func (p *adoptPlan) dropXattr(name string, opaque bool) {
	if opaque && name == overlayOpaqueXattr || name == selinuxXattr {
		return
	}
	f := p.current()
	f.drop = append(f.drop, name)
}

func (p *adoptPlan) link(st *unix.Stat_t) {
	key := inode{uint64(st.Dev), st.Ino}
	lc := p.links[key]
	if lc == nil {
		lc = &linkCount{nlink: uint64(st.Nlink)}
		p.links[key] = lc
	}
	lc.seen++
}

func (p *adoptPlan) refuse(err error) {
	if p.refused == nil {
		p.refused = err
	}
}

// check reports why the tree cannot be adopted, or nil.
func (p *adoptPlan) check() error {
	if p.refused != nil {
		return p.refused
	}
	for _, lc := range p.links {
		if lc.seen != lc.nlink {
			return errors.New("a file is hardlinked from outside the tree")
		}
	}
	return nil
}

// apply makes the changes, directory times after everything that could
// move them, then gives the root what extractSnapshot gives its own.
func (p *adoptPlan) apply(root string) error {
	for _, f := range p.fixes {
		if err := f.apply(filepath.Join(root, f.name)); err != nil {
			return err
		}
	}
	for i := len(p.dirs) - 1; i >= 0; i-- {
		if err := setMtime(filepath.Join(root, p.dirs[i].name), *p.dirs[i].mtime); err != nil {
			return err
		}
	}
	return adoptRoot(root)
}

func (f *fix) apply(p string) error {
	switch {
	case f.remove:
		return os.Remove(p)
	case f.whiteout:
		return recreateWhiteout(p)
	}
	for _, x := range f.drop {
		if err := unix.Lremovexattr(p, x); err != nil && !errors.Is(err, unix.ENODATA) {
			return &os.PathError{Op: "lremovexattr " + x, Path: p, Err: err}
		}
	}
	if f.opaque {
		if err := overlayfs.SetOpaque(p); err != nil {
			return err
		}
	}
	if f.mtime != nil {
		return setMtime(p, *f.mtime)
	}
	return nil
}

// recreateWhiteout replaces an upper dir's whiteout, which overlayfs may
// have hardlinked to others, by one of its own, as extraction does.
func recreateWhiteout(p string) error {
	if err := os.Remove(p); err != nil {
		return err
	}
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknod whiteout", Path: p, Err: err}
	}
	return nil
}

// setMtime sets what extraction sets: atime and mtime both to mtime.
func setMtime(p string, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}

// adoptRoot gives the root what extractSnapshot's directory has: mode
// 0755, the caller's ownership, no xattrs.
func adoptRoot(root string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	// The effective ids, which own what the caller creates (under chroot isolation strata's
	// real uid is not its own: see executor's guardFromSteps).
	if uid, gid := os.Geteuid(), os.Getegid(); int(st.Uid) != uid || int(st.Gid) != gid {
		if err := unix.Lchown(root, uid, gid); err != nil {
			return &os.PathError{Op: "lchown", Path: root, Err: err}
		}
	}
	if err := unix.Chmod(root, 0o755); err != nil {
		return &os.PathError{Op: "chmod", Path: root, Err: err}
	}
	names, err := listxattr(root)
	if err != nil {
		return err
	}
	for _, x := range names {
		if x == selinuxXattr {
			continue
		}
		if err := unix.Lremovexattr(root, x); err != nil && !errors.Is(err, unix.ENODATA) {
			return &os.PathError{Op: "lremovexattr " + x, Path: root, Err: err}
		}
	}
	return nil
}

// Into moves the written directory to dst, the layer's snapshot, once its
// plan is applied and its files are on disk; the caller holds dst's lock
// and has seen it missing. It reports whether it did: a directory that is
// gone, on another filesystem or that cannot be changed as planned is left
// to extraction.
func (a *Adoption) Into(dst string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	plan := a.plan
	a.plan = nil
	parent := filepath.Dir(dst)
	if plan == nil || !exists(a.dir) || !sameFS(a.dir, parent) {
		return false, nil
	}
	if err := plan.apply(a.dir); err != nil {
		// A change the host refuses (an xattr it will not remove, say)
		// only costs the extraction adoption would have spared.
		return false, nil
	}
	// As with an extracted snapshot: the files must be on disk before the
	// rename makes the snapshot visible.
	if err := durable.SyncFS(a.dir); err != nil {
		return false, err
	}
	if err := os.Rename(a.dir, dst); err != nil {
		return false, fmt.Errorf("moving snapshot into place: %w", err)
	}
	return true, durable.SyncDir(parent)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

func sameFS(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}
