package executor

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
)

// differ writes into upper what changed in the rootfs copy at root since before was
// recorded, in overlayfs' own representation, so that both paths give the same layer:
//   - a new path is copied; a directory replaced by a new one (rm -rf d && mkdir d) is copied
//     as opaque, like overlayfs marks a directory created over a whiteout;
//   - a file is changed when its inode, ctime, mtime, size, mode or owner differ: any write,
//     chmod, chown or touch moves ctime, so an identical rewrite counts too, like a copy-up;
//   - a directory is kept when its mode, owner or mtime changed or anything below it did,
//     with the metadata it has now (a copy-up keeps the lower's);
//   - a path that is gone becomes a whiteout (char device 0:0).
type differ struct {
	root, upper string
	before      *tree
	links       map[uint64]string // inode in root -> its copy in upper, to keep hard links
	dirs        []string          // upper directories made, to set their times last
	// ensured are the upper directories known to exist: a deep tree's ancestors are looked
	// at once, not again for every entry below them.
	ensured map[string]bool
}

func diffTree(root string, before *tree, upper string) error {
	d := &differ{root: root, upper: upper, before: before, links: map[uint64]string{}, ensured: map[string]bool{"": true}}
	if _, err := d.dir(""); err != nil {
		return fmt.Errorf("diffing rootfs copy: %w", err)
	}
	if err := copyDirTimes(root, upper, d.dirs); err != nil {
		return fmt.Errorf("setting directory times in the upper dir: %w", err)
	}
	return nil
}

// dir diffs the children of rel and reports whether anything below it changed.
func (d *differ) dir(rel string) (bool, error) {
	entries, err := os.ReadDir(filepath.Join(d.root, rel))
	if err != nil {
		return false, err
	}
	present := make(map[string]bool, len(entries))
	changed := false
	for _, e := range entries {
		present[e.Name()] = true
		c, err := d.entry(path.Join(rel, e.Name()))
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	for _, name := range d.before.children[rel] {
		if present[name] {
			continue
		}
		if err := d.whiteout(path.Join(rel, name)); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

func (d *differ) entry(rel string) (bool, error) {
	st, err := statx(filepath.Join(d.root, rel))
	if err != nil {
		return false, err
	}
	b, known := d.before.entries[rel]
	now := stateOf(&st)
	dir := now.mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case !known:
		return true, d.emit(rel, false)
	case b.ino != now.ino || b.btime != now.btime || b.mode&unix.S_IFMT != now.mode&unix.S_IFMT:
		return true, d.emit(rel, dir)
	case dir:
		below, err := d.dir(rel)
		if err != nil || !(below || dirChanged(b, now)) {
			return false, err
		}
		return true, d.ensureDir(rel)
	case fileChanged(b, now):
		return true, d.emit(rel, false)
	}
	return false, nil
}

func dirChanged(b, now entryState) bool {
	return b.mode != now.mode || b.uid != now.uid || b.gid != now.gid || b.mtime != now.mtime
}

func fileChanged(b, now entryState) bool {
	return dirChanged(b, now) || b.ctime != now.ctime || b.size != now.size
}

// emit copies rel and, for a directory, everything below it into upper.
func (d *differ) emit(rel string, opaque bool) error {
	if err := d.ensureParents(rel); err != nil {
		return err
	}
	src, dst := filepath.Join(d.root, rel), filepath.Join(d.upper, rel)
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if !isDir(&st) {
		return d.copyFile(src, dst, &st)
	}
	if err := d.makeDir(rel, &st); err != nil {
		return err
	}
	if opaque {
		if err := markOpaque(dst); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := d.emit(path.Join(rel, e.Name()), false); err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) copyFile(src, dst string, st *unix.Stat_t) error {
	if st.Nlink > 1 {
		if first, ok := d.links[st.Ino]; ok {
			return os.Link(first, dst)
		}
		d.links[st.Ino] = dst
	}
	return copyNode(src, dst, st)
}

func (d *differ) whiteout(rel string) error {
	if err := d.ensureParents(rel); err != nil {
		return err
	}
	p := filepath.Join(d.upper, rel)
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknod whiteout", Path: p, Err: err}
	}
	return nil
}

// ensureParents makes the ancestors of rel in upper, as they are in the rootfs.
func (d *differ) ensureParents(rel string) error {
	return d.ensureDir(parentOf(rel))
}

func (d *differ) ensureDir(rel string) error {
	if d.ensured[rel] {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(d.upper, rel)); err == nil {
		d.ensured[rel] = true
		return nil
	}
	if err := d.ensureParents(rel); err != nil {
		return err
	}
	var st unix.Stat_t
	src := filepath.Join(d.root, rel)
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	return d.makeDir(rel, &st)
}

func (d *differ) makeDir(rel string, st *unix.Stat_t) error {
	dst := filepath.Join(d.upper, rel)
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	d.dirs = append(d.dirs, rel)
	d.ensured[rel] = true
	return copyMeta(filepath.Join(d.root, rel), dst, st)
}

// markOpaque: the user form where trusted.overlay.* cannot be set (an upper dir that is
// itself on overlayfs, the usual reason for the copy fallback; a user namespace).
func markOpaque(p string) error { return overlayfs.SetOpaque(p) }
