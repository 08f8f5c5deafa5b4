package layer

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
	"github.com/strata-build/strata/internal/xattrs"
)

// isOverlayIndirection reports overlay xattrs that point a file at data
// stored elsewhere (renamed directories, metadata-only copy-ups).
func isOverlayIndirection(name string) bool { return overlayfs.IsIndirection(name) }

// xattrTarget names a file for xattr calls: by open descriptor when fd is
// not -1 (no path lookup), else by path without following a symlink. The
// reading is internal/xattrs'; path names the file in errors.
type xattrTarget struct {
	fd   int
	path string
}

func (x xattrTarget) file() xattrs.File {
	if x.fd >= 0 {
		return xattrs.FD(x.fd)
	}
	return xattrs.Path(x.path)
}

// listxattr lists the xattr names of path without following a symlink.
func listxattr(path string) ([]string, error) {
	return xattrTarget{fd: -1, path: path}.names()
}

// getxattr reads one xattr of path without following a symlink.
func getxattr(path, name string) ([]byte, error) {
	return xattrTarget{fd: -1, path: path}.value(name)
}

// names lists the xattr names; a filesystem without xattrs has none.
func (x xattrTarget) names() ([]string, error) {
	names, err := x.file().List()
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: x.path, Err: err}
	}
	return names, nil
}

// value reads one xattr; a missing attribute is nil, not an error.
func (x xattrTarget) value(name string) ([]byte, error) {
	v, err := x.file().Get(name)
	if errors.Is(err, unix.ENODATA) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "getxattr " + name, Path: x.path, Err: err}
	}
	return v, nil
}
