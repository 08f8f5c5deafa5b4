package xattrs

import (
	"bytes"
	"errors"

	"golang.org/x/sys/unix"
)

// File names a file whose xattrs are read: by path without following a symlink at it
// (Path), by path following one (Follow, for a /proc/self/fd link), or by open
// descriptor (FD), which needs no lookup at all.
type File struct {
	fd     int
	path   string
	follow bool
}

// Path is the file at p; a symlink at p is read itself, not followed.
func Path(p string) File { return File{fd: -1, path: p} }

// Follow is the file at p, following a symlink at p.
func Follow(p string) File { return File{fd: -1, path: p, follow: true} }

// FD is the file open as fd.
func FD(fd int) File { return File{fd: fd} }

func (f File) list(buf []byte) (int, error) {
	switch {
	case f.fd >= 0:
		return unix.Flistxattr(f.fd, buf)
	case f.follow:
		return unix.Listxattr(f.path, buf)
	}
	return unix.Llistxattr(f.path, buf)
}

func (f File) get(name string, buf []byte) (int, error) {
	switch {
	case f.fd >= 0:
		return unix.Fgetxattr(f.fd, name, buf)
	case f.follow:
		return unix.Getxattr(f.path, name, buf)
	}
	return unix.Lgetxattr(f.path, name, buf)
}

// List returns the names of the file's xattrs, in the order the filesystem gives them. A
// filesystem without xattrs (ENOTSUP) has none. Errors are the system call's, unwrapped.
func (f File) List() ([]string, error) {
	buf, err := sized(f.list)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, b := range bytes.Split(buf, []byte{0}) {
		if len(b) > 0 {
			names = append(names, string(b))
		}
	}
	return names, nil
}

// Get returns the value of the file's xattr name; an empty value is nil. A missing
// attribute is an error wrapping unix.ENODATA, and so is any on a filesystem without xattrs
// (ENOTSUP: it has none). Other errors are the system call's, unwrapped.
func (f File) Get(name string) ([]byte, error) {
	buf, err := sized(func(b []byte) (int, error) { return f.get(name, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, unix.ENODATA
	}
	return buf, err
}

// sized calls an xattr system call with a buffer that grows to the size the call asks for,
// again when the data grew in between (ERANGE). Most values fit the first buffer, so one
// call is the usual cost.
func sized(call func([]byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := call(buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := call(nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+1)
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		return buf[:n:n], nil
	}
}
