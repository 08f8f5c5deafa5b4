package overlayfs

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// IsWhiteout reports overlayfs' whiteout: a character device 0:0.
func IsWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return st.Rdev == 0
	case *unix.Stat_t:
		return st.Rdev == 0
	}
	return false
}

// IsWhiteoutStat is IsWhiteout for a stat result.
func IsWhiteoutStat(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// IsOpaque reports whether the directory at p (a symlink at p is not followed) carries
// the opaque marker in either form. A marker that cannot be read counts as absent.
func IsOpaque(p string) bool {
	ok, _ := opaque(func(name string, buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
	return ok
}

// OpaqueFD reports whether the directory open as fd carries the opaque marker in either
// form. A filesystem without xattrs has none; any other error reading the marker is
// returned, naming the xattr.
func OpaqueFD(fd int) (bool, error) {
	return opaque(func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
}

// opaque reads the marker's forms through get. The value must be exactly "y": a longer
// one (ERANGE in a two-byte buffer) is not the marker.
func opaque(get func(name string, buf []byte) (int, error)) (bool, error) {
	for _, name := range opaqueXattrs {
		var buf [2]byte
		n, err := get(name, buf[:])
		switch {
		case err == nil:
			if string(buf[:n]) == "y" {
				return true, nil
			}
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ERANGE):
		default:
			return false, fmt.Errorf("%s: %w", name, err)
		}
	}
	return false, nil
}

// SetOpaque marks the directory at p opaque: the trusted form, or the user form where
// trusted.overlay.* cannot be written (in a user namespace, where overlayfs is mounted
// with userxattr and reads that form; an upper dir that is itself on overlayfs).
func SetOpaque(p string) error {
	err := unix.Lsetxattr(p, OpaqueXattr, []byte("y"), 0)
	if err == nil {
		return nil
	}
	if err2 := unix.Lsetxattr(p, UserOpaqueXattr, []byte("y"), 0); err2 == nil {
		return nil
	}
	return &fs.PathError{Op: "setxattr " + OpaqueXattr, Path: p, Err: err}
}
