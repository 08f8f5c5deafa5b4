package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
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

	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/layer"
)

// writer puts a COPY's files into a fresh directory that becomes the
// step's layer. Parent directories that exist in the image are recreated
// with the image's metadata, so the layer does not change them. It writes
// exactly what the plan describes (planned and srcFile), which is what the
// step's cache key covers, and reads from the source only the content of
// regular files, checked against the planned hash.
type writer struct {
	op       *copyOp
	out      string
	now      time.Time
	dirTimes []dirTime
	// owners sets the image owners (owners.Host when nil).
	owners owners.Policy
	// written marks the names holding the file written for them that a
	// hard link may point at.
	written map[string]bool
}

// lchown gives the written file host the image owner own.
func (w *writer) lchown(host string, own owner) error {
	p := w.owners
	if p == nil {
		p = owners.Host
	}
	return p.Lchown(host, own.uid, own.gid)
}

type dirTime struct {
	host  string
	mtime time.Time
}

func (w *writer) apply(ctx context.Context, p planned) error {
	switch {
	case p.Data != nil:
		if err := w.ensureDir(path.Dir(p.Dst)); err != nil {
			return err
		}
		return w.writeData(p)
	case p.Extract:
		return w.extract(ctx, p)
	case p.URLTime != nil:
		return w.writeDownload(p)
	case p.Git != nil:
		return w.writeGit(ctx, p)
	case p.Dir:
		if err := w.ensureDir(p.Dst); err != nil {
			return err
		}
	default:
		if err := w.ensureDir(path.Dir(p.Dst)); err != nil {
			return err
		}
	}
	for _, f := range p.Files {
		if err := w.copyNode(f); err != nil {
			return err
		}
	}
	return nil
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
		if err := w.makeDir(w.host(cur), mode, own); err != nil {
			return err
		}
		w.dirTimes = append(w.dirTimes, dirTime{w.host(cur), mtime})
	}
	return nil
}

func (w *writer) makeDir(host string, mode fs.FileMode, own owner) error {
	if err := os.Mkdir(host, 0o700); err != nil {
		return err
	}
	if err := w.lchown(host, own); err != nil {
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
func (w *writer) fileOwner(f srcFile) owner {
	if w.op.chown != nil || f.Owner == nil {
		return w.newOwner()
	}
	return owner{uid: f.Owner.UID, gid: f.Owner.GID}
}

// modeOr is the mode of a file the step makes with mode def (a heredoc,
// a download) under --chmod.
func (w *writer) modeOr(def fs.FileMode) fs.FileMode { return w.op.modeFor(def, false) }

// modeOf is the mode the copied file f gets.
func (w *writer) modeOf(f srcFile) fs.FileMode { return w.op.modeFor(f.Mode, f.Kind == kindDir) }

// copyNode creates one file, directory, link or device at f.Dst (a
// directory without its contents), replacing what an earlier source put
// there.
func (w *writer) copyNode(f srcFile) error {
	host := w.host(f.Dst)
	if fi, err := os.Lstat(host); err == nil && !(fi.IsDir() && f.Kind == kindDir) {
		if err := os.RemoveAll(host); err != nil {
			return err
		}
		w.forget(f.Dst)
	}
	if f.LinkTo != "" && w.stillWritten(f.LinkTo) {
		return os.Link(w.host(f.LinkTo), host)
	}
	own := w.fileOwner(f)
	var err error
	switch f.Kind {
	case kindDir:
		if _, err := os.Lstat(host); err == nil {
			return nil
		}
		w.dirTimes = append(w.dirTimes, dirTime{host, f.Mtime})
		err = w.makeDir(host, w.modeOf(f), own)
	case kindReg:
		err = w.copyFile(f, host, own)
	case kindSymlink:
		err = w.copySymlink(f, host, own)
	default:
		err = w.copySpecial(f, host, own)
	}
	if err != nil {
		return err
	}
	if st, ok := f.entry.info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && f.Kind != kindDir {
		w.remember(f.Dst)
	}
	if f.Kind == kindSymlink {
		return nil
	}
	// Last: chown cleared any file capability.
	return setXattrs(host, f.Xattrs)
}

// copyFile copies a regular file's content, hashing it on the way when the
// plan has its hash: what lands in the layer is then exactly what the key
// covers, or the step fails.
func (w *writer) copyFile(f srcFile, host string, own owner) error {
	if f.staged != nil {
		return w.placeStaged(f, host, own)
	}
	in, err := w.op.from.open(f.entry)
	if err != nil {
		return changed(f, err)
	}
	defer in.Close()
	var r io.Reader = in
	var h hash.Hash
	if f.Sum != "" {
		h = sha256.New()
		r = io.TeeReader(in, h)
	}
	n, err := w.writeFile(host, r, fileMeta{w.modeOf(f), own, f.Mtime})
	if err != nil {
		return err
	}
	if n != f.Size || (h != nil && hex.EncodeToString(h.Sum(nil)) != f.Sum) {
		return changed(f, nil)
	}
	return nil
}

// placeStaged moves the content staged for f (the bytes its key hashed)
// to host. The source must still be the file that was read: a context
// edited since fails the step, as when the writer reads it.
func (w *writer) placeStaged(f srcFile, host string, own owner) error {
	c, ok := w.op.from.(*contextFS)
	if !ok {
		return fmt.Errorf("%s: staged content of a source that is not the context", f.Dst)
	}
	e, err := c.lstat(f.entry.rel)
	if err != nil {
		return changed(f, err)
	}
	if st, ok := statOf(e.info); !ok || !sameStat(st, f.staged.st) {
		return changed(f, nil)
	}
	m := fileMeta{w.modeOf(f), own, f.Mtime}
	// The staging directory is on the step directory's filesystem; should
	// it not be (EXDEV), the staged bytes are copied.
	if err := os.Rename(f.staged.path, host); errors.Is(err, syscall.EXDEV) {
		in, err := os.Open(f.staged.path)
		if err != nil {
			return err
		}
		defer in.Close()
		n, err := w.writeFile(host, in, m)
		if err != nil {
			return err
		}
		if n != f.Size {
			return changed(f, nil)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("placing %s: %w", f.Dst, err)
	}
	return w.setMeta(host, m)
}

// stillWritten reports whether the file this COPY wrote at dst for a hard
// link's first name is still there: a later source may have put another
// file, a symlink or a directory at that name, and a link to it would be
// wrong (inode numbers are reused, so removals are tracked, not inodes).
func (w *writer) stillWritten(dst string) bool { return w.written[dst] }

// remember records that dst holds the file written for it.
func (w *writer) remember(dst string) {
	if w.written == nil {
		w.written = map[string]bool{}
	}
	w.written[dst] = true
}

// forget drops what dst, removed, and everything below it held.
func (w *writer) forget(dst string) {
	for p := range w.written {
		if p == dst || strings.HasPrefix(p, dst+"/") {
			delete(w.written, p)
		}
	}
}

type fileMeta struct {
	mode  fs.FileMode
	own   owner
	mtime time.Time
}

func (w *writer) writeFile(host string, r io.Reader, m fileMeta) (int64, error) {
	f, err := os.OpenFile(host, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return n, fmt.Errorf("writing %s: %w", host, err)
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	return n, w.setMeta(host, m)
}

// setMeta gives the regular file host its owner, mode and times.
func (w *writer) setMeta(host string, m fileMeta) error {
	if err := w.lchown(host, m.own); err != nil {
		return err
	}
	if err := os.Chmod(host, m.mode); err != nil {
		return err
	}
	return os.Chtimes(host, m.mtime, m.mtime)
}

// setXattrs sets a copied file's kept xattrs.
func setXattrs(host string, xs []xattr) error {
	for _, x := range xs {
		if err := unix.Lsetxattr(host, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("setting %s on %s: %w", x.Name, host, err)
		}
	}
	return nil
}

func (w *writer) copySymlink(f srcFile, host string, own owner) error {
	if err := os.Symlink(f.Link, host); err != nil {
		return err
	}
	if err := w.lchown(host, own); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(f.Mtime.UnixNano()), unix.NsecToTimespec(f.Mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (w *writer) copySpecial(f srcFile, host string, own owner) error {
	mode := uint32(unix.S_IFIFO)
	var dev uint64
	switch f.Kind {
	case kindChar:
		mode = unix.S_IFCHR
	case kindBlock:
		mode = unix.S_IFBLK
	}
	if f.Dev != nil {
		dev = unix.Mkdev(f.Dev.Major, f.Dev.Minor)
	}
	var err error
	if mode == unix.S_IFIFO {
		err = unix.Mknod(host, mode|0o600, int(dev))
	} else {
		// Recorded in an empty file where the kernel refuses nodes (rootless).
		err = owners.Mknod(w.owners, host, mode|0o600, dev)
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", host, err)
	}
	if err := w.lchown(host, own); err != nil {
		return err
	}
	if err := os.Chmod(host, w.modeOf(f)); err != nil {
		return err
	}
	return os.Chtimes(host, f.Mtime, f.Mtime)
}

// writeData writes heredoc content: mode 0644 unless --chmod.
func (w *writer) writeData(p planned) error {
	host := w.host(p.Dst)
	if err := os.RemoveAll(host); err != nil {
		return err
	}
	_, err := w.writeFile(host, strings.NewReader(*p.Data), fileMeta{w.modeOr(0o644), w.newOwner(), w.now})
	return err
}

// extract unpacks an ADDed local archive into the destination directory,
// keeping the archive's owners and modes as Docker does. The bytes
// unpacked are hashed on the way and must be the planned ones.
func (w *writer) extract(ctx context.Context, p planned) error {
	if err := w.ensureDir(p.Dst); err != nil {
		return err
	}
	src := p.Files[0]
	name := displaySrc(p.srcPath)
	var f *os.File
	var err error
	if p.URLTime != nil {
		// ADD --unpack=true of a download: this build's own file.
		f, err = os.Open(src.entry.host)
	} else {
		f, err = w.op.from.open(src.entry)
	}
	if err != nil {
		return changed(src, err)
	}
	defer f.Close()
	if err := checkArchive(f, name); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	r := io.TeeReader(f, h)
	if _, err := layer.Extract(ctx, r, w.host(p.Dst), layer.ExtractOptions{Mode: layer.Flatten, Owners: w.owners}); err != nil {
		return fmt.Errorf("extracting %s: %w", name, hidePrefix{err, w.out})
	}
	// Extract may stop at the tar's end; the rest is hashed all the same.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != src.Sum {
		return changed(src, nil)
	}
	if w.op.chown == nil {
		return nil
	}
	return w.chownBelow(w.host(p.Dst), *w.op.chown)
}

// chownBelow gives everything below dir (not dir itself, which may be an
// existing directory of the image) to own: ADD --chown applies to the
// files it unpacks, as BuildKit's copy does.
func (w *writer) chownBelow(dir string, own owner) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		return w.lchown(p, own)
	})
}

// writeDownload writes an ADDed URL: mode 0600 unless --chmod, and the
// server's Last-Modified time, as Docker does.
func (w *writer) writeDownload(p planned) error {
	if err := w.ensureDir(path.Dir(p.Dst)); err != nil {
		return err
	}
	host := w.host(p.Dst)
	if err := os.RemoveAll(host); err != nil {
		return err
	}
	f, err := os.Open(p.Files[0].entry.host)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = w.writeFile(host, f, fileMeta{w.modeOr(0o600), w.newOwner(), *p.URLTime})
	return err
}
