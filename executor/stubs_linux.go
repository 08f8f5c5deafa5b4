package executor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/fsroot"
)

// target resolves a mount target inside the rootfs and creates what is missing of it: a
// directory, or an empty file when dir is false. Everything created is recorded as a stub,
// and the directories it was created in as parents, so the host can remove the stubs from the
// layer afterwards as if they had never been there (BuildKit does the same with its mount
// stubs).
func (s *sandbox) target(p string, dir bool) (string, error) {
	rel, err := resolveInRoot(s.root, p)
	if err != nil {
		return "", setupErr("resolving mount target", p, err)
	}
	comps := fsroot.Split(rel)
	cur := ""
	for i, c := range comps {
		next := path.Join(cur, c)
		full := filepath.Join(s.root, next)
		last := i == len(comps)-1
		fi, err := os.Lstat(full)
		switch {
		case err == nil && !last && !fi.IsDir():
			return "", setupErr("mount target", p, errors.New("a parent is not a directory"))
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			if err := s.createStub(cur, next, dir || !last); err != nil {
				return "", setupErr("creating mount point", p, err)
			}
		default:
			return "", setupErr("stat", full, err)
		}
		cur = next
	}
	return filepath.Join(s.root, rel), nil
}

func (s *sandbox) createStub(parent, rel string, dir bool) error {
	if err := s.recordParents(parent); err != nil {
		return err
	}
	full := filepath.Join(s.root, rel)
	if dir {
		if err := os.Mkdir(full, 0o755); err != nil {
			return err
		}
	} else {
		f, err := os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	s.stubs = append(s.stubs, stub{Path: rel, Dir: dir})
	s.seen[rel] = true
	return nil
}

// recordParents records dir and its ancestors (unless they are stubs themselves) with their
// metadata from before anything was created in them.
func (s *sandbox) recordParents(dir string) error {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	for p := dir; ; p = parentOf(p) {
		if !s.seen[p] {
			s.seen[p] = true
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(s.root, p), &st); err != nil {
				return err
			}
			s.parents = append(s.parents, parentMeta{Path: p, Mode: st.Mode, UID: st.Uid, GID: st.Gid, Atime: st.Atim, Mtime: st.Mtim})
		}
		if p == "" {
			return nil
		}
	}
}

// restoreParentTimes puts back the times creating stubs changed, so the step sees the
// image's own.
func (s *sandbox) restoreParentTimes() error {
	for _, p := range s.parents {
		full := filepath.Join(s.root, p.Path)
		if err := setTimes(full, p.Atime, p.Mtime); err != nil {
			return setupErr("restoring times", full, err)
		}
	}
	return nil
}

func setTimes(p string, atime, mtime unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW)
}

// cleanStubs removes the init's mount points from dir (the upper dir, or the copied rootfs)
// once the sandbox is gone. A parent whose mtime the command did not change gets its times
// back; with an overlay, a parent copied up only because a stub was created in it, still
// empty and as it was, is removed from the upper dir too. The step may have replaced any
// directory on the way with a symlink, so every operation goes through beneath.
func cleanStubs(dir string, rep childReport, overlay bool) error {
	if err := checkReportPaths(rep); err != nil {
		return err
	}
	b := beneath(dir)
	parents := append([]parentMeta(nil), rep.Parents...)
	sort.SliceStable(parents, func(i, j int) bool { return depth(parents[i].Path) > depth(parents[j].Path) })
	// Which parents the step left alone must be known before removing stubs changes them.
	untouched := make([]bool, len(parents))
	for i, p := range parents {
		st, err := b.lstat(p.Path)
		untouched[i] = err == nil && st.Mtim == p.Mtime
	}
	for i := len(rep.Stubs) - 1; i >= 0; i-- {
		if err := removeStub(b, rep.Stubs[i]); err != nil {
			return err
		}
	}
	return restoreParents(b, parents, untouched, overlay)
}

// checkReportPaths refuses a report naming a path outside the rootfs.
func checkReportPaths(rep childReport) error {
	for _, s := range rep.Stubs {
		if err := checkLocal(s.Path); err != nil || s.Path == "" {
			return fmt.Errorf("sandbox report: bad mount point %q", s.Path)
		}
	}
	for _, p := range rep.Parents {
		if err := checkLocal(p.Path); err != nil {
			return fmt.Errorf("sandbox report: %w", err)
		}
	}
	return nil
}

// restoreParents puts back the times of the parents the step left alone and, with an
// overlay, drops the ones that are mere copy-ups.
func restoreParents(b beneath, parents []parentMeta, untouched []bool, overlay bool) error {
	for i, p := range parents {
		if untouched[i] {
			if err := b.setTimes(p.Path, p.Atime, p.Mtime); err != nil && !gone(err) {
				return &fs.PathError{Op: "restoring times", Path: filepath.Join(string(b), p.Path), Err: err}
			}
		}
		if overlay && p.Path != "" && pristineCopyUp(b, p) {
			if err := b.remove(p.Path, true); err != nil && !gone(err) {
				return &fs.PathError{Op: "removing copy-up", Path: filepath.Join(string(b), p.Path), Err: err}
			}
		}
	}
	return nil
}

// gone reports an error meaning the path is not there any more (or no longer reachable
// without a symlink): the step removed or replaced it, and there is nothing to clean.
func gone(err error) bool {
	return errors.Is(err, errNotBeneath) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

func depth(p string) int {
	if p == "" {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// removeStub removes an empty stub; one the step filled (it could not, while mounted over,
// but a stub directory can hold another stub's leftovers) or replaced is left alone.
func removeStub(b beneath, s stub) error {
	st, err := b.lstat(s.Path)
	if gone(err) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "lstat", Path: filepath.Join(string(b), s.Path), Err: err}
	}
	switch {
	case s.Dir && isDir(&st) && b.emptyDir(s.Path):
	case !s.Dir && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0:
	default:
		return nil
	}
	if err := b.remove(s.Path, s.Dir); err != nil && !gone(err) {
		return &fs.PathError{Op: "removing mount point", Path: filepath.Join(string(b), s.Path), Err: err}
	}
	return nil
}

// pristineCopyUp reports whether an upper directory is an empty, non-opaque copy of its
// lower with unchanged metadata: removing it changes nothing the step did.
func pristineCopyUp(b beneath, m parentMeta) bool {
	st, err := b.lstat(m.Path)
	if err != nil || !isDir(&st) {
		return false
	}
	if st.Mode != m.Mode || st.Uid != m.UID || st.Gid != m.GID || st.Mtim != m.Mtime {
		return false
	}
	return !b.opaque(m.Path) && b.emptyDir(m.Path)
}

func isEmptyDir(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return errors.Is(err, io.EOF)
}
