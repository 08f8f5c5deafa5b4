package builder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// at opens the clean absolute context path p relative to the context's
// descriptor, the kernel refusing any symlink on the way and any ".."
// (openat2 with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS; component by
// component with O_NOFOLLOW before Linux 5.6). With O_NOFOLLOW a symlink at
// p itself is opened, not followed.
func (c *contextFS) at(p string, flags int) (int, error) {
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(int(c.root.Fd()), rel, &how)
	if errors.Is(err, unix.ENOSYS) {
		fd, err = openBeneath(int(c.root.Fd()), rel, flags)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		err = fmt.Errorf("a parent directory is a symlink, or was replaced by one while the build read the context: %w", err)
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

// openBeneath opens rel below dirfd one component at a time, each with
// O_NOFOLLOW, for kernels without openat2.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	comps := strings.Split(rel, "/")
	fd := dirfd
	for i, comp := range comps {
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(comps)-1 {
			f = flags | unix.O_CLOEXEC
		}
		next, err := unix.Openat(fd, comp, f, 0)
		if fd != dirfd {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	if fd == dirfd {
		return unix.Dup(dirfd)
	}
	return fd, nil
}

// readlinkFD reads the target of the symlink opened (O_PATH) as fd.
func readlinkFD(fd int) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// fstatInfo is the fs.FileInfo of the file open as fd, named name.
func fstatInfo(fd int, name string) (fs.FileInfo, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	return statInfo{name: name, st: st}, nil
}

// statInfo is a stat result as os.Lstat would describe it.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (s statInfo) Name() string       { return s.name }
func (s statInfo) Size() int64        { return s.st.Size }
func (s statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s statInfo) Sys() any           { return &s.st }

// Mode converts the kernel's mode as package os does.
func (s statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// oPath opens a file for its identity only (fstat, *at calls).
const oPath = unix.O_PATH

// ReadContextFile reads the file name (relative) of the context directory
// dir with symlinks resolved inside the context, as if it were the root: a
// Dockerfile or .dockerignore that is a symlink to /etc/shadow reads the
// context's own etc/shadow (or nothing), never the host's, whoever runs
// strata.
func ReadContextFile(dir, name string) ([]byte, error) {
	root, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_PATH, 0)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(int(root.Fd()), name, &how)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, name), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, name))
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: f.Name(), Err: errors.New("not a regular file")}
	}
	return io.ReadAll(f)
}
