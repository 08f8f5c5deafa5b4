package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
)

// metadata restores ownership, mode, xattrs and times of a created entry.
// Order matters: chown clears setuid bits and file capabilities, so the
// mode and security.capability come after it.
func (e *extractor) metadata(hdr *tar.Header, name, target string) error {
	symlink := hdr.Typeflag == tar.TypeSymlink
	mode := uint32(hdr.Mode & 0o7777)
	if e.opts.Export {
		mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if !e.opts.Export {
		if err := policy(e.opts.Owners).Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if !symlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, target, mode, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: target, Err: err}
		}
	}
	if err := setXattrs(hdr, target, symlink, e.opts.Export); err != nil {
		return err
	}
	times := timesOf(hdr)
	if hdr.Typeflag == tar.TypeDir {
		e.dirs = append(e.dirs, dirTime{name: name, atime: times[0], mtime: times[1]})
		return nil
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: target, Err: err}
	}
	return nil
}

func timesOf(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

// setXattrs restores the xattrs the layer format keeps (see keepXattr). An
// archive's trusted.overlay.* attributes in particular are never applied:
// they would let a layer forge whiteouts in an overlay lower directory.
func setXattrs(hdr *tar.Header, target string, symlink, export bool) error {
	for k, v := range hdr.PAXRecords {
		x, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || !keepXattr(x) || (symlink && strings.HasPrefix(x, "user.")) || (export && x == "security.capability") {
			continue
		}
		err := unix.Lsetxattr(target, x, []byte(v), 0)
		if errors.Is(err, unix.ENOTSUP) {
			// The target filesystem cannot hold it (Docker skips these too).
			continue
		}
		if err != nil {
			return &os.PathError{Op: "lsetxattr " + x, Path: target, Err: err}
		}
	}
	return nil
}

// whiteout applies an OCI whiteout entry found in directory dir.
func (e *extractor) whiteout(dir, base string) error {
	if base == whiteoutOpaque {
		return e.opaque(dir)
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." || isWhiteoutName(victim) {
		return fmt.Errorf("invalid whiteout name %q", base)
	}
	if e.opts.Mode == OverlayLower {
		return e.overlayWhiteout(dir, victim)
	}
	parent, err := resolveIn(e.root, dir)
	if err != nil {
		return fmt.Errorf("resolving whiteout directory: %w", err)
	}
	e.invalidate()
	return removeAll(filepath.Join(parent, victim))
}

// overlayWhiteout writes overlayfs's own whiteout: a char device 0:0.
func (e *extractor) overlayWhiteout(dir, victim string) error {
	parent, err := e.parent(dir)
	if err != nil {
		return err
	}
	target := filepath.Join(parent, victim)
	if err := e.clear(target); err != nil {
		return err
	}
	if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknod whiteout", Path: target, Err: err}
	}
	return nil
}

// opaque hides everything below dir that did not come from this archive.
func (e *extractor) opaque(dir string) error {
	if e.opts.Mode == OverlayLower {
		parent, err := e.parent(dir)
		if err != nil {
			return err
		}
		if err := overlayfs.SetOpaque(parent); err != nil {
			return err
		}
		return nil
	}
	parent, err := resolveIn(e.root, dir)
	if err != nil {
		return fmt.Errorf("resolving opaque directory: %w", err)
	}
	entries, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	e.invalidate()
	for _, ent := range entries {
		if e.written[path.Join(dir, ent.Name())] {
			continue
		}
		if err := removeAll(filepath.Join(parent, ent.Name())); err != nil {
			return err
		}
	}
	return nil
}

// removeAll removes p (never following a symlink at p); a missing path or
// a parent that is not a directory means there is nothing to remove.
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	return err
}

// finish sets directory times now that nothing more is created in them,
// deepest last-created first. Names are resolved again: an entry after the
// directory may have replaced one of its parents by a symlink.
func (e *extractor) finish() error {
	for i := len(e.dirs) - 1; i >= 0; i-- {
		d := e.dirs[i]
		p, err := resolveIn(e.root, d.name)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", d.name, err)
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		ts := []unix.Timespec{d.atime, d.mtime}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "utimes", Path: p, Err: err}
		}
	}
	return nil
}
