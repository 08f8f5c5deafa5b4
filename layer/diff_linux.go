package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
	"github.com/strata-build/strata/internal/owners"
)

type inode struct{ dev, ino uint64 }

// tarWriter turns one directory tree into a canonical tar stream.
type tarWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	root  string
	opts  WriteOptions
	links map[inode]string // first name written for each multiply-linked inode
	buf   []byte
	adopt *adoptPlan // nil unless the tree becomes its snapshot
}

// WriteTar writes the canonical tar stream of the tree at dir to w: PAX
// entries in walk order (siblings sorted by their names in the stream, a
// directory before its contents), relative names, no root entry. It is
// what WriteLayer hashes and compresses.
func WriteTar(ctx context.Context, w io.Writer, dir string, opts WriteOptions) error {
	return writeTar(ctx, w, dir, opts, nil)
}

// writeTar is WriteTar recording in plan, when not nil, what adopting the
// tree as its snapshot needs.
func writeTar(ctx context.Context, w io.Writer, dir string, opts WriteOptions, plan *adoptPlan) error {
	t := &tarWriter{
		adopt: plan,
		ctx:   ctx,
		tw:    tar.NewWriter(w),
		root:  dir,
		opts:  opts,
		links: map[inode]string{},
		buf:   make([]byte, 256<<10),
	}
	root, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening layer source: %w", err)
	}
	defer root.Close()
	if err := t.walk(root, ""); err != nil {
		return err
	}
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("finishing tar stream of %s: %w", dir, err)
	}
	return nil
}

// walk writes the entries of the open directory d (at rel). Files are
// opened and stat'ed relative to d: no path is looked up twice.
func (t *tarWriter) walk(d *os.File, rel string) error {
	children, err := t.readDir(d, rel)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if err := t.entry(int(d.Fd()), c); err != nil {
			var named *entryError
			if errors.As(err, &named) || errors.Is(err, context.Canceled) {
				return err
			}
			return &entryError{name: c.name, err: err}
		}
	}
	return nil
}

// child is a directory entry with its lstat result and its tar name.
type child struct {
	base    string // name in its directory
	name    string // path relative to the root
	tarBase string // base name in the tar stream: .wh.<name> for whiteouts
	st      unix.Stat_t
	wh      bool
}

// readDir lists d sorted by the names the entries get in the stream, so
// whiteouts sort as .wh.<name>, not as the name they delete.
func (t *tarWriter) readDir(d *os.File, rel string) ([]child, error) {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", path.Join(t.root, rel), err)
	}
	children := make([]child, len(names))
	for i, n := range names {
		c := &children[i]
		c.base, c.name, c.tarBase = n, path.Join(rel, n), n
		if err := unix.Fstatat(int(d.Fd()), n, &c.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, &os.PathError{Op: "lstat", Path: filepath.Join(t.root, c.name), Err: err}
		}
		if t.opts.Source == FromUpper && overlayfs.IsWhiteoutStat(&c.st) {
			c.tarBase, c.wh = whiteoutPrefix+n, true
		}
	}
	slices.SortFunc(children, func(a, b child) int { return strings.Compare(a.tarBase, b.tarBase) })
	return children, nil
}

// owner is the image owner of the entry c of the directory dirfd: its own on disk, or what
// a rootless build recorded (WriteOptions.Owners), read through the directory's
// descriptor.
func (t *tarWriter) owner(dirfd int, c child) (int, int, error) {
	p := t.opts.Owners
	if p == nil || p.OnDisk() {
		return int(c.st.Uid), int(c.st.Gid), nil
	}
	return p.Owner(fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, c.base), &c.st)
}

// maxPathLen is PATH_MAX: the longest absolute path, with its NUL, the
// kernel resolves.
const maxPathLen = 4096

func (t *tarWriter) entry(dirfd int, c child) error {
	st := &c.st
	if t.adopt != nil {
		t.planEntry(&c)
	}
	if c.wh {
		return t.writeHeader(markerHeader(path.Join(path.Dir(c.name), c.tarBase), t.mtime(st)))
	}
	if isWhiteoutName(c.base) {
		// Written as is, the file would delete something in every reader.
		return errors.New("file name is reserved for OCI whiteouts")
	}
	if len(c.name) >= maxPathLen {
		// No reader can create it (the kernel takes paths below PATH_MAX): the layer
		// would be stored and cached, then fail every build that uses it.
		return fmt.Errorf("path of %d bytes is longer than an image can hold (%d)", len(c.name)+1, maxPathLen)
	}
	ftype := st.Mode & unix.S_IFMT
	if ftype == unix.S_IFSOCK {
		// Sockets cannot be represented in tar; Docker skips them too.
		return nil
	}
	uid, gid, err := t.owner(dirfd, c)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: c.name, Mode: int64(st.Mode & 0o7777), Uid: uid, Gid: gid, ModTime: t.mtime(st)}
	if ftype != unix.S_IFDIR && st.Nlink > 1 {
		if t.adopt != nil {
			t.adopt.link(st)
		}
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := t.links[key]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return t.writeHeader(hdr)
		}
		t.links[key] = c.name
	}
	switch ftype {
	case unix.S_IFREG:
		if mode, dev, ok := t.recorded(dirfd, c); ok {
			// A node a rootless build could not make (owners.Mknod). The tree is not its
			// layer's snapshot: extracting the layer makes the node where the kernel allows.
			if t.adopt != nil {
				t.adopt.refuse(errors.New("holds a recorded device node"))
			}
			return t.recordedDevice(hdr, dirfd, c.base, mode, dev)
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		return t.regular(hdr, dirfd, c.base)
	case unix.S_IFDIR:
		return t.dir(hdr, dirfd, c.base)
	}
	return t.special(hdr, dirfd, c.base, st)
}

// planEntry records what adopting c needs beyond its tar entry's content.
func (t *tarWriter) planEntry(c *child) {
	p := t.adopt
	if p.full() {
		t.adopt = nil
		return
	}
	switch ftype := c.st.Mode & unix.S_IFMT; {
	case c.wh:
		p.fixes = append(p.fixes, fix{name: c.name, whiteout: true})
	case ftype == unix.S_IFSOCK:
		p.fixes = append(p.fixes, fix{name: c.name, remove: true})
	case overlayfs.IsWhiteoutStat(&c.st):
		p.refuse(errors.New("character device 0:0 cannot be stored in an overlay lower directory"))
	default:
		p.entry(c, t.mtime(&c.st))
	}
}

func (t *tarWriter) mtime(st *unix.Stat_t) time.Time {
	return clampTime(time.Unix(st.Mtim.Unix()), t.opts.Epoch)
}

// openAt opens base in dirfd; O_NOFOLLOW because it was lstat'ed as a
// regular file or directory and a symlink swapped in since must not be
// followed out of the tree.
func (t *tarWriter) openAt(dirfd int, base, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(dirfd, base, flags|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(t.root, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(t.root, name)), nil
}

func (t *tarWriter) regular(hdr *tar.Header, dirfd int, base string) error {
	f, err := t.openAt(dirfd, base, hdr.Name, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := t.xattrs(hdr, xattrTarget{fd: int(f.Fd()), path: f.Name()}); err != nil {
		return err
	}
	if err := t.writeHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(t.tw, io.LimitReader(f, hdr.Size), t.buf)
	if err != nil {
		return fmt.Errorf("copying content: %w", err)
	}
	if n != hdr.Size {
		return fmt.Errorf("file shrank from %d to %d bytes while being written", hdr.Size, n)
	}
	return nil
}

func (t *tarWriter) dir(hdr *tar.Header, dirfd int, base string) error {
	rel := hdr.Name
	hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
	d, err := t.openAt(dirfd, base, rel, unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer d.Close()
	x := xattrTarget{fd: int(d.Fd()), path: d.Name()}
	opaque, err := t.isOpaque(d)
	if err != nil {
		return err
	}
	if t.adopt != nil {
		t.adopt.current().opaque = opaque
	}
	if err := t.xattrs(hdr, x); err != nil {
		return err
	}
	if err := t.writeHeader(hdr); err != nil {
		return err
	}
	if opaque {
		if err := t.writeHeader(markerHeader(hdr.Name+whiteoutOpaque, hdr.ModTime)); err != nil {
			return err
		}
	}
	return t.walk(d, rel)
}

func (t *tarWriter) special(hdr *tar.Header, dirfd int, base string, st *unix.Stat_t) error {
	full := filepath.Join(t.root, hdr.Name)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := readlinkAt(dirfd, base)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: full, Err: err}
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFCHR:
		hdr.Typeflag = tar.TypeChar
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
	default:
		return fmt.Errorf("unsupported file type %#o", st.Mode&unix.S_IFMT)
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	}
	if err := t.xattrs(hdr, xattrTarget{fd: -1, path: full}); err != nil {
		return err
	}
	return t.writeHeader(hdr)
}

// recorded reads the device node the empty file c records, where the policy records nodes.
func (t *tarWriter) recorded(dirfd int, c child) (uint32, uint64, bool) {
	if t.opts.Owners == nil || !t.opts.Owners.RecordsDevices() || c.st.Size != 0 {
		return 0, 0, false
	}
	return owners.Device(t.opts.Owners, fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, c.base), &c.st)
}

// recordedDevice writes the device node an empty file records.
func (t *tarWriter) recordedDevice(hdr *tar.Header, dirfd int, base string, mode uint32, dev uint64) error {
	hdr.Typeflag = tar.TypeChar
	if mode&unix.S_IFMT == unix.S_IFBLK {
		hdr.Typeflag = tar.TypeBlock
	}
	hdr.Mode = int64(mode & 0o7777)
	hdr.Devmajor, hdr.Devminor = int64(unix.Major(dev)), int64(unix.Minor(dev))
	if err := t.xattrs(hdr, xattrTarget{fd: -1, path: filepath.Join(t.root, hdr.Name)}); err != nil {
		return err
	}
	return t.writeHeader(hdr)
}

func readlinkAt(dirfd int, base string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// markerHeader is the entry for an OCI whiteout: an empty file owned by root.
func markerHeader(name string, mtime time.Time) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, ModTime: mtime}
}

// isOpaque reports an upper dir's opaque directory, in either marker form
// (internal/overlayfs); d is open.
func (t *tarWriter) isOpaque(d *os.File) (bool, error) {
	if t.opts.Source != FromUpper {
		return false, nil
	}
	opaque, err := overlayfs.OpaqueFD(int(d.Fd()))
	if err != nil {
		return false, &os.PathError{Op: "getxattr", Path: d.Name(), Err: err}
	}
	return opaque, nil
}

func (t *tarWriter) xattrs(hdr *tar.Header, x xattrTarget) error {
	names, err := x.names()
	if err != nil {
		return err
	}
	for _, name := range names {
		if t.opts.Source == FromUpper && isOverlayIndirection(name) {
			// The content of such a file lives in a lower layer or under
			// another name; the upper dir alone cannot describe it.
			return fmt.Errorf("overlay attribute %s found: mount overlays with redirect_dir=off,metacopy=off", name)
		}
		if !keepXattr(name) {
			if t.adopt != nil {
				t.adopt.dropXattr(name, hdr.Typeflag == tar.TypeDir && t.adopt.current().opaque)
			}
			continue
		}
		v, err := x.value(name)
		if err != nil {
			return err
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattrPrefix+name] = string(v)
	}
	return nil
}

func (t *tarWriter) writeHeader(hdr *tar.Header) error {
	canonicalize(hdr)
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header: %w", err)
	}
	return nil
}

// entryError names the entry a layer write failed on, once (not again for
// each directory above it).
type entryError struct {
	name string
	err  error
}

func (e *entryError) Error() string {
	return fmt.Sprintf("adding %s to layer: %v", shortName(e.name), e.err)
}

func (e *entryError) Unwrap() error { return e.err }

// shortName keeps an error line readable when a path is kilobytes long.
func shortName(name string) string {
	if len(name) <= 256 {
		return name
	}
	return name[:120] + "..." + name[len(name)-120:]
}
