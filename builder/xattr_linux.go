package builder

import (
	"github.com/strata-build/strata/internal/xattrs"

	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// keptXattr is package layer's rule for the xattrs a layer carries.
func keptXattr(name string) bool { return xattrs.Kept(name) }

func listXattrs(p string, follow bool) ([]string, error) {
	list := unix.Llistxattr
	if follow {
		list = unix.Listxattr
	}
	buf, err := sized(func(b []byte) (int, error) { return list(p, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range strings.Split(string(buf), "\x00") {
		if name != "" {
			names = append(names, name)
		}
	}
	return names, nil
}

func getXattr(p, name string, follow bool) ([]byte, error) {
	get := unix.Lgetxattr
	if follow {
		get = unix.Getxattr
	}
	return sized(func(b []byte) (int, error) { return get(p, name, b) })
}

// sized calls an xattr call with a buffer of the size it asks for, again
// when the attribute grew in between (ERANGE).
func sized(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// keptXattrs reads the xattrs of the file at p that a layer keeps, sorted
// by name; follow says whether p is a path to follow (a /proc/self/fd link).
func keptXattrs(p string, follow bool) ([]xattr, error) {
	names, err := listXattrs(p, follow)
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	var out []xattr
	for _, name := range names {
		if !keptXattr(name) {
			continue
		}
		val, err := getXattr(p, name, follow)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		out = append(out, xattr{Name: name, Value: val})
	}
	slices.SortFunc(out, func(a, b xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m mergedFS) xattrs(e entry) ([]xattr, error) {
	if e.info.Mode()&fs.ModeSymlink != 0 {
		return nil, nil
	}
	return keptXattrs(e.host, false)
}

// xattrs reads e's through its descriptor, so a path swapped meanwhile is
// never followed; symlinks carry none a layer keeps (user.* is refused on
// them).
func (c *contextFS) xattrs(e entry) ([]xattr, error) {
	if e.info.Mode()&fs.ModeSymlink != 0 {
		return nil, nil
	}
	fd, err := c.at(e.rel, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return keptXattrs(fmt.Sprintf("/proc/self/fd/%d", fd), true)
}
