package executor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	opaqueXattr     = "trusted.overlay.opaque"
	userOpaqueXattr = "user.overlay.opaque"
	overlayXattrs   = "trusted.overlay."
)

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// isWhiteout reports overlayfs' whiteout form: a char device 0:0.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOpaque reports an overlayfs opaque directory, in the trusted or the user xattr form.
func isOpaque(p string) bool {
	for _, name := range []string{opaqueXattr, userOpaqueXattr} {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(p, name, buf)
		if err == nil && string(buf[:n]) == "y" {
			return true
		}
	}
	return false
}

// xattrs returns p's extended attributes except overlayfs' own, which describe the overlay
// and not the file.
func xattrs(p string) ([][2]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, name := range strings.Split(string(bytes.TrimRight(buf[:size], "\x00")), "\x00") {
		if name == "" || strings.HasPrefix(name, overlayXattrs) || name == userOpaqueXattr {
			continue
		}
		v, err := getxattr(p, name)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{name, v})
	}
	return out, nil
}

func getxattr(p, name string) (string, error) {
	size, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return "", err
	}
	buf := make([]byte, size)
	size, err = unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:size]), nil
}

// copyMeta gives dst the owner, mode, xattrs and times of src (st is src's Lstat). Times are
// set last since the others change them.
func copyMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dst, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		// After chown, which clears setuid and setgid bits.
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	attrs, err := xattrs(src)
	if err != nil {
		return &os.PathError{Op: "listing xattrs", Path: src, Err: err}
	}
	for _, a := range attrs {
		if err := unix.Lsetxattr(dst, a[0], []byte(a[1]), 0); err != nil {
			return &os.PathError{Op: "setxattr " + a[0], Path: dst, Err: err}
		}
	}
	return setTimes(dst, st.Atim, st.Mtim)
}

// copyNode creates dst as a copy of the non-directory src, content included.
func copyNode(src, dst string, st *unix.Stat_t) error {
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		err = copyContent(src, dst)
	case unix.S_IFLNK:
		var target string
		if target, err = os.Readlink(src); err == nil {
			err = os.Symlink(target, dst)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		err = unix.Mknod(dst, st.Mode, int(st.Rdev))
	default:
		err = fmt.Errorf("unsupported file type %o", st.Mode&unix.S_IFMT)
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return copyMeta(src, dst, st)
}

func copyContent(src, dst string) error {
	in, err := openNoAtime(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// io.Copy between files uses copy_file_range, so reflinks and in-kernel copies apply.
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// openNoAtime opens src for reading without updating its atime: on a relatime mount the
// first read after a write costs a metadata write, which made copying a fresh snapshot
// twice as slow. O_NOATIME needs ownership or CAP_FOWNER; without them, open plainly.
func openNoAtime(src string) (*os.File, error) {
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		return os.Open(src)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: src, Err: err}
	}
	return os.NewFile(uintptr(fd), src), nil
}
