package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
)

// beneath does file operations on paths below a directory the step could write, from the
// host, after the step: the step may have left symlinks anywhere (mv /a /a2 && ln -s
// /host/dir /a), so no path is joined onto the directory and handed to the kernel to
// resolve. Each component but the last is opened in turn, refusing symlinks; the operation
// then works on the last one relative to its parent, never following it.
type beneath string

// errNotBeneath marks a path that no longer leads to a real directory entry below the root;
// callers treat it like a missing file.
var errNotBeneath = errors.New("path leaves the directory or goes through a symlink")

// checkLocal refuses a path from the init's report that is not a clean relative path.
func checkLocal(rel string) error {
	if rel != "" && (!filepath.IsLocal(rel) || filepath.Clean(rel) != rel) {
		return fmt.Errorf("report names path %q outside the rootfs", rel)
	}
	return nil
}

// parent opens the directory holding rel and returns it with rel's last component; "" is the
// root itself, returned as ".".
func (b beneath) parent(rel string) (int, string, error) {
	fd, err := unix.Open(string(b), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: string(b), Err: err}
	}
	if rel == "" {
		return fd, ".", nil
	}
	comps := strings.Split(rel, "/")
	for _, c := range comps[:len(comps)-1] {
		if c == "" || c == "." || c == ".." {
			unix.Close(fd)
			return -1, "", errNotBeneath
		}
		// O_DIRECTORY with O_NOFOLLOW fails on a symlink.
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, "", errNotBeneath
		}
		fd = next
	}
	return fd, comps[len(comps)-1], nil
}

// at runs op on rel's parent directory and last component.
func (b beneath) at(rel string, op func(dirfd int, name string) error) error {
	dirfd, name, err := b.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	return op(dirfd, name)
}

func (b beneath) lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := b.at(rel, func(dirfd int, name string) error {
		return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	})
	return st, err
}

func (b beneath) setTimes(rel string, atime, mtime unix.Timespec) error {
	return b.at(rel, func(dirfd int, name string) error {
		return unix.UtimesNanoAt(dirfd, name, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func (b beneath) remove(rel string, dir bool) error {
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	return b.at(rel, func(dirfd int, name string) error { return unix.Unlinkat(dirfd, name, flags) })
}

// openDir opens rel for reading if it is a directory and not a symlink.
func (b beneath) openDir(rel string) (*os.File, error) {
	var f *os.File
	err := b.at(rel, func(dirfd int, name string) error {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), filepath.Join(string(b), rel))
		return nil
	})
	return f, err
}

// emptyDir reports whether rel is an empty directory, not reached through a symlink.
func (b beneath) emptyDir(rel string) bool {
	f, err := b.openDir(rel)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return errors.Is(err, io.EOF)
}

// opaque reports whether the directory rel carries overlayfs' opaque marker, in either
// form; one that cannot be read counts as absent.
func (b beneath) opaque(rel string) bool {
	f, err := b.openDir(rel)
	if err != nil {
		return false
	}
	defer f.Close()
	opaque, _ := overlayfs.OpaqueFD(int(f.Fd()))
	return opaque
}

// removeAll removes rel and everything below it, never following a symlink.
func (b beneath) removeAll(rel string) error {
	err := b.at(rel, removeAllAt)
	if gone(err) {
		return nil
	}
	return err
}

func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	dir := os.NewFile(uintptr(fd), name)
	names, err := dir.Readdirnames(-1)
	for _, n := range names {
		if err == nil {
			err = removeAllAt(fd, n)
		}
	}
	dir.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}
