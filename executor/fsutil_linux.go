package executor

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/filecopy"
	"github.com/strata-build/strata/internal/overlayfs"
	"github.com/strata-build/strata/internal/xattrs"
)

// The overlay markers, as the copy fallback writes and reads them (internal/overlayfs).
const (
	opaqueXattr     = overlayfs.OpaqueXattr
	userOpaqueXattr = overlayfs.UserOpaqueXattr
)

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// fileXattrs returns p's extended attributes except overlayfs' own, which describe the overlay
// and not the file: every trusted.overlay.* one, and the user form of the opaque marker
// (other user.overlay.* ones are copied). A filesystem without xattrs
// has none.
func fileXattrs(p string) ([][2]string, error) {
	f := xattrs.Path(p)
	names, err := f.List()
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, name := range names {
		if strings.HasPrefix(name, overlayfs.TrustedPrefix) || name == userOpaqueXattr {
			continue
		}
		v, err := f.Get(name)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{name, string(v)})
	}
	return out, nil
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
	attrs, err := fileXattrs(src)
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
		// 0600 until copyMeta gives the copy src's owner and mode.
		err = filecopy.Content(src, dst, 0o600)
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
