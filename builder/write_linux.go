package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/layer"
)

// writer puts a COPY's files into a fresh directory that becomes the
// step's layer. Parent directories that exist in the image are recreated
// with the image's metadata, so the layer does not change them.
type writer struct {
	op       *copyOp
	out      string
	now      time.Time
	dirTimes []dirTime
	links    map[fileID]string // hardlinked sources: first copy's host path
}

// fileID identifies a source file with several links.
type fileID struct{ dev, ino uint64 }

type dirTime struct {
	host  string
	mtime time.Time
}

func (w *writer) apply(ctx context.Context, p planned) error {
	switch {
	case p.data != nil:
		if err := w.ensureDir(path.Dir(p.dst)); err != nil {
			return err
		}
		return w.writeData(p)
	case p.extract:
		return w.extract(ctx, p)
	case p.mtime != nil:
		return w.writeDownload(p)
	case p.src.info.IsDir():
		if err := w.ensureDir(p.dst); err != nil {
			return err
		}
		return w.copyChildren(p.srcPath, p.dst)
	}
	if err := w.ensureDir(path.Dir(p.dst)); err != nil {
		return err
	}
	return w.copyNode(p.src, p.dst)
}

// finish sets directory times last, deepest first, since writing into a
// directory changes its mtime.
func (w *writer) finish() error {
	for _, d := range slices.Backward(w.dirTimes) {
		if err := os.Chtimes(d.host, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) host(p string) string { return filepath.Join(w.out, p) }

// ensureDir creates dir and its parents in the output: with the image's
// mode, owner and time where the image has the directory, else 0755 owned
// by --chown's ids (root without it), as Docker creates them.
func (w *writer) ensureDir(dir string) error {
	cur := "/"
	for _, c := range splitPath(dir) {
		cur = path.Join(cur, c)
		if _, err := os.Lstat(w.host(cur)); err == nil {
			continue
		}
		mode, own, mtime := fs.FileMode(0o755), w.newOwner(), w.now
		if e, err := w.op.image.lstat(cur); err == nil && e.info.IsDir() {
			mode, own, mtime = e.info.Mode(), ownerOf(e.info), e.info.ModTime()
		}
		if err := makeDir(w.host(cur), mode, own); err != nil {
			return err
		}
		w.dirTimes = append(w.dirTimes, dirTime{w.host(cur), mtime})
	}
	return nil
}

func makeDir(host string, mode fs.FileMode, own owner) error {
	if err := os.Mkdir(host, 0o700); err != nil {
		return err
	}
	if err := os.Lchown(host, own.uid, own.gid); err != nil {
		return err
	}
	return os.Chmod(host, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// newOwner is who owns what the step creates.
func (w *writer) newOwner() owner {
	if w.op.chown != nil {
		return *w.op.chown
	}
	return owner{}
}

// fileOwner is who owns a copied file: --chown, else root for context
// files, else the source's owner (COPY --from keeps ownership).
func (w *writer) fileOwner(fi fs.FileInfo) owner {
	if w.op.chown != nil || w.op.context {
		return w.newOwner()
	}
	return ownerOf(fi)
}

// modeOr is --chmod's mode, else def.
func (w *writer) modeOr(def fs.FileMode) fs.FileMode {
	if w.op.mode != nil {
		return *w.op.mode
	}
	return def
}

func (w *writer) modeOf(fi fs.FileMode) fs.FileMode {
	if w.op.mode != nil {
		return *w.op.mode
	}
	return fi & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func (w *writer) copyChildren(src, dst string) error {
	names, err := w.op.from.readDir(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	for _, n := range names {
		e, err := w.op.from.lstat(path.Join(src, n))
		if err != nil {
			return err
		}
		if err := w.copyNode(e, path.Join(dst, n)); err != nil {
			return err
		}
		if e.info.IsDir() {
			if err := w.copyChildren(path.Join(src, n), path.Join(dst, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyNode creates one file, directory, link or device at dst (a directory
// without its contents), replacing what an earlier source put there.
func (w *writer) copyNode(e entry, dst string) error {
	host := w.host(dst)
	if fi, err := os.Lstat(host); err == nil && !(fi.IsDir() && e.info.IsDir()) {
		if err := os.RemoveAll(host); err != nil {
			return err
		}
	}
	own := w.fileOwner(e.info)
	mt := e.info.Mode()
	switch {
	case mt.IsDir():
		if _, err := os.Lstat(host); err == nil {
			return nil
		}
		w.dirTimes = append(w.dirTimes, dirTime{host, e.info.ModTime()})
		return makeDir(host, w.modeOf(mt), own)
	case mt.IsRegular():
		if w.linkExisting(e, host) {
			return nil
		}
		return w.copyFile(e, host, own)
	case mt&fs.ModeSymlink != 0:
		return copySymlink(e, host, own)
	case mt&(fs.ModeDevice|fs.ModeNamedPipe) != 0:
		return w.copySpecial(e, host, own)
	}
	return nil
}

func (w *writer) copyFile(e entry, host string, own owner) error {
	in, err := os.Open(e.host)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := w.writeFile(host, in, fileMeta{w.modeOf(e.info.Mode()), own, e.info.ModTime()}); err != nil {
		return err
	}
	if w.op.context {
		return nil
	}
	return copyXattrs(e.host, host)
}

type fileMeta struct {
	mode  fs.FileMode
	own   owner
	mtime time.Time
}

func (w *writer) writeFile(host string, r io.Reader, m fileMeta) error {
	f, err := os.OpenFile(host, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", host, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Lchown(host, m.own.uid, m.own.gid); err != nil {
		return err
	}
	if err := os.Chmod(host, m.mode); err != nil {
		return err
	}
	return os.Chtimes(host, m.mtime, m.mtime)
}

// copyXattrs carries the xattrs an image layer keeps (user.*, and the
// file capability, as on ping) of a file copied from an image (COPY
// --from) over; chown cleared the capability, so this goes last.
func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		return fmt.Errorf("listing xattrs of %s: %w", src, err)
	}
	for _, name := range names {
		if !keptXattr(name) {
			continue
		}
		val, err := getXattr(src, name)
		if err != nil {
			return fmt.Errorf("reading %s of %s: %w", name, src, err)
		}
		if err := unix.Lsetxattr(dst, name, val, 0); err != nil {
			return fmt.Errorf("copying %s of %s: %w", name, dst, err)
		}
	}
	return nil
}

// keptXattr is package layer's rule for the xattrs a layer carries.
func keptXattr(name string) bool {
	if strings.HasPrefix(name, "user.overlay.") {
		return false
	}
	return name == "security.capability" || strings.HasPrefix(name, "user.")
}

func listXattrs(p string) ([]string, error) {
	n, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil || n == 0 {
		return nil, err
	}
	buf := make([]byte, n)
	if n, err = unix.Llistxattr(p, buf); err != nil {
		return nil, err
	}
	var names []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name != "" {
			names = append(names, name)
		}
	}
	return names, nil
}

func getXattr(p, name string) ([]byte, error) {
	n, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	n, err = unix.Lgetxattr(p, name, buf)
	return buf[:n], err
}

func copySymlink(e entry, host string, own owner) error {
	target, err := os.Readlink(e.host)
	if err != nil {
		return err
	}
	if err := os.Symlink(target, host); err != nil {
		return err
	}
	if err := os.Lchown(host, own.uid, own.gid); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.info.ModTime().UnixNano()), unix.NsecToTimespec(e.info.ModTime().UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (w *writer) copySpecial(e entry, host string, own owner) error {
	st, ok := e.info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := unix.Mknod(host, st.Mode, int(st.Rdev)); err != nil {
		return fmt.Errorf("creating %s: %w", host, err)
	}
	if err := os.Lchown(host, own.uid, own.gid); err != nil {
		return err
	}
	return os.Chtimes(host, e.info.ModTime(), e.info.ModTime())
}

// writeData writes heredoc content: mode 0644 unless --chmod.
func (w *writer) writeData(p planned) error {
	host := w.host(p.dst)
	if err := os.RemoveAll(host); err != nil {
		return err
	}
	return w.writeFile(host, strings.NewReader(*p.data), fileMeta{w.modeOr(0o644), w.newOwner(), w.now})
}

// extract unpacks an ADDed local archive into the destination directory,
// keeping the archive's owners and modes as Docker does.
func (w *writer) extract(ctx context.Context, p planned) error {
	if err := w.ensureDir(p.dst); err != nil {
		return err
	}
	f, err := os.Open(p.src.host)
	if err != nil {
		return err
	}
	defer f.Close()
	name := displaySrc(p.srcPath)
	if err := checkArchive(f, name); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := layer.Extract(ctx, f, w.host(p.dst), layer.ExtractOptions{Mode: layer.Flatten}); err != nil {
		return fmt.Errorf("extracting %s: %w", name, hidePrefix{err, w.out})
	}
	if w.op.chown == nil {
		return nil
	}
	return chownBelow(w.host(p.dst), *w.op.chown)
}

// chownBelow gives everything below dir (not dir itself, which may be an
// existing directory of the image) to own: ADD --chown applies to the
// files it unpacks, as BuildKit's copy does.
func chownBelow(dir string, own owner) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		return os.Lchown(p, own.uid, own.gid)
	})
}

// writeDownload writes an ADDed URL: mode 0600 unless --chmod, and the
// server's Last-Modified time, as Docker does.
func (w *writer) writeDownload(p planned) error {
	if err := w.ensureDir(path.Dir(p.dst)); err != nil {
		return err
	}
	host := w.host(p.dst)
	if err := os.RemoveAll(host); err != nil {
		return err
	}
	f, err := os.Open(p.src.host)
	if err != nil {
		return err
	}
	defer f.Close()
	return w.writeFile(host, f, fileMeta{w.modeOr(0o600), w.newOwner(), *p.mtime})
}

// linkExisting hardlinks host to the copy of a file already copied under
// another name, so COPY keeps a tree's hardlinks (busybox's applets) as
// Docker does, instead of multiplying the file.
func (w *writer) linkExisting(e entry, host string) bool {
	st, ok := e.info.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink < 2 {
		return false
	}
	id := fileID{uint64(st.Dev), st.Ino}
	if first, ok := w.links[id]; ok && os.Link(first, host) == nil {
		return true
	}
	if w.links == nil {
		w.links = map[fileID]string{}
	}
	w.links[id] = host
	return false
}
