package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/xattrs"
)

// keptXattr is package layer's rule for the xattrs a layer carries.
func keptXattr(name string) bool { return xattrs.Kept(name) }

// xattrFile names the file at p for internal/xattrs; follow says whether
// p is a path to follow (a /proc/self/fd link).
func xattrFile(p string, follow bool) xattrs.File {
	if follow {
		return xattrs.Follow(p)
	}
	return xattrs.Path(p)
}

// listXattrs lists the xattr names of the file at p; a filesystem without
// xattrs has none.
func listXattrs(p string, follow bool) ([]string, error) {
	return xattrFile(p, follow).List()
}

// getXattr reads one xattr of the file at p; a missing one is an error
// wrapping ENODATA.
func getXattr(p, name string, follow bool) ([]byte, error) {
	return xattrFile(p, follow).Get(name)
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
