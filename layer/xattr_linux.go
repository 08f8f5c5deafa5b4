package layer

import (
	"bytes"
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// isOverlayIndirection reports overlay xattrs that point a file at data
// stored elsewhere (renamed directories, metadata-only copy-ups).
func isOverlayIndirection(name string) bool {
	for _, p := range []string{"trusted.overlay.", "user.overlay."} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return rest == "redirect" || rest == "metacopy"
		}
	}
	return false
}

// xattrTarget names a file for xattr calls: by open descriptor when fd is
// not -1 (no path lookup), else by path without following a symlink.
type xattrTarget struct {
	fd   int
	path string
}

func (x xattrTarget) list(buf []byte) (int, error) {
	if x.fd >= 0 {
		return unix.Flistxattr(x.fd, buf)
	}
	return unix.Llistxattr(x.path, buf)
}

func (x xattrTarget) get(name string, buf []byte) (int, error) {
	if x.fd >= 0 {
		return unix.Fgetxattr(x.fd, name, buf)
	}
	return unix.Lgetxattr(x.path, name, buf)
}

// listxattr lists the xattr names of path without following a symlink.
func listxattr(path string) ([]string, error) {
	return xattrTarget{fd: -1, path: path}.names()
}

// getxattr reads one xattr of path without following a symlink.
func getxattr(path, name string) ([]byte, error) {
	return xattrTarget{fd: -1, path: path}.value(name)
}

func (x xattrTarget) names() ([]string, error) {
	buf, err := readSized(func(b []byte) (int, error) { return x.list(b) })
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: x.path, Err: err}
	}
	var names []string
	for _, b := range bytes.Split(buf, []byte{0}) {
		if len(b) > 0 {
			names = append(names, string(b))
		}
	}
	return names, nil
}

// value reads one xattr; a missing attribute is nil, not an error.
func (x xattrTarget) value(name string) ([]byte, error) {
	buf, err := readSized(func(b []byte) (int, error) { return x.get(name, b) })
	if errors.Is(err, unix.ENODATA) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "getxattr " + name, Path: x.path, Err: err}
	}
	return buf, nil
}

// readSized calls an xattr syscall with a growing buffer. A filesystem
// without xattr support has none.
func readSized(call func([]byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := call(buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			size, err := call(nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+1)
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, err
		default:
			if n == 0 {
				return []byte{}, nil
			}
			return buf[:n], nil
		}
	}
}
