package builder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/strata-build/strata/internal/userdb"
)

// resolveChown turns a --chown value into ids (see ownerFor).
func resolveChown(spec string, image mergedFS) (*owner, error) {
	own, err := ownerFor(spec, image)
	if err != nil {
		return nil, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	return own, nil
}

// ownerFor turns a --chown value, or the USER a WORKDIR creates its
// directory for, into ids the way BuildKit's file operations do (see
// userdb.FileOwner): a name takes its uid and primary gid from the image's
// /etc/passwd, a number N is N:N, and a missing file or name gives 0
// rather than an error. RUN resolves its user by other rules, in the
// sandbox. An empty spec is nil: no chown.
func ownerFor(spec string, image mergedFS) (*owner, error) {
	if spec == "" {
		return nil, nil
	}
	o, err := userdb.FileOwner(spec, image.openUserFile)
	if err != nil {
		return nil, err
	}
	return &owner{uid: o.UID, gid: o.GID}, nil
}

// openUserFile opens the image's /etc/passwd or /etc/group, following
// symlinks inside the image as a chroot would. Like BuildKit's
// openfile.Regular it refuses anything but a regular file: a RUN can leave
// a FIFO or a device node there, and opening one from the host would block
// or reach a host device.
func (m mergedFS) openUserFile(name string) (io.ReadCloser, error) {
	p, err := resolvePath(m, name)
	if err != nil {
		return nil, err
	}
	e, err := m.lstat(p)
	if err != nil {
		return nil, err // fs.ErrNotExist for a missing file: no entries
	}
	if !e.info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	f, err := os.Open(e.host)
	if err != nil {
		return nil, err
	}
	// The same inode lstat saw: nothing swapped it for something else.
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, e.info) {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	return f, nil
}

// errNotRegular is BuildKit's refusal of a passwd or group file that is
// not a regular file.
var errNotRegular = errors.New("not a regular file")
