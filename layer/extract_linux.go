package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
	"github.com/strata-build/strata/internal/owners"
)

// extractor applies the entries of one archive to the tree at root.
type extractor struct {
	root string
	opts ExtractOptions
	// dirs are directories whose times are set last: creating their
	// contents would move them again.
	dirs []dirTime
	// written holds every path this archive created, and their parents:
	// an opaque whiteout in Flatten mode deletes everything else.
	written map[string]bool
	// lastDir caches the resolution of the previous entry's parent; only
	// directory, symlink and removal entries can change it.
	lastDir, lastParent string
	// content counts the bytes of regular files written: a sparse entry
	// expands to its full size from a few bytes of archive.
	content int64
	buf     []byte
}

type dirTime struct {
	name         string
	atime, mtime unix.Timespec
}

// Extract applies the archive read from r (plain tar, gzip, zstd or bzip2,
// detected from its bytes) to the directory dst, creating dst if needed,
// and returns the sha256 of the uncompressed tar stream (its diffID).
// Nothing is ever written outside dst; an entry that would escape it is
// resolved inside dst, as a chroot at dst would see it.
func Extract(ctx context.Context, r io.Reader, dst string, opts ExtractOptions) (v1.Hash, error) {
	return extract(ctx, r, dst, opts, nil)
}

// ExtractBlob is Extract for a layer blob of media type mt: a blob whose
// compression is not the one mt names is refused (a ContentError, as
// VerifyContent says) before anything is written. It decompresses the blob
// once, so a download can be stored, checked and extracted in one pass.
func ExtractBlob(ctx context.Context, r io.Reader, dst string, opts ExtractOptions, mt types.MediaType) (v1.Hash, error) {
	want, err := CompressionOf(mt)
	if err != nil {
		return v1.Hash{}, err
	}
	return extract(ctx, r, dst, opts, func(f Format) error { return checkFormat(mt, want, f) })
}

// extract is Extract, refusing the archive when check (if set) refuses
// its detected format.
func extract(ctx context.Context, r io.Reader, dst string, opts ExtractOptions, check func(Format) error) (v1.Hash, error) {
	dec, format, err := Decompress(r)
	if err != nil {
		return v1.Hash{}, err
	}
	defer dec.Close()
	if check != nil {
		if err := check(format); err != nil {
			return v1.Hash{}, err
		}
	}
	root, err := prepareRoot(dst)
	if err != nil {
		return v1.Hash{}, err
	}
	h := sha256.New()
	stream := io.TeeReader(&boundedReader{r: dec, left: opts.MaxSize, limited: opts.MaxSize > 0}, h)
	e := &extractor{root: root, opts: opts, written: map[string]bool{}, buf: make([]byte, 256<<10)}
	if err := e.apply(ctx, tar.NewReader(stream)); err != nil {
		return v1.Hash{}, err
	}
	// The diffID covers the whole stream, padding after the end marker too.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return v1.Hash{}, fmt.Errorf("reading archive: %w", err)
	}
	if err := e.finish(); err != nil {
		return v1.Hash{}, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// mkdirAll creates p and its missing parents 0755 whatever the umask: an
// implied directory of an archive (a/b/c with no a/ entry) reaches a layer
// or a RUN's view, so its mode must not depend on the caller.
func mkdirAll(p string) error {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return nil
	}
	if parent := filepath.Dir(p); parent != p {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		if fi, serr := os.Stat(p); serr == nil && fi.IsDir() {
			return nil
		}
		return err
	}
	return os.Chmod(p, 0o755)
}

func prepareRoot(dst string) (string, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", fmt.Errorf("creating extraction target: %w", err)
	}
	abs, err := filepath.Abs(dst)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

func (e *extractor) apply(ctx context.Context, tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.entry(hdr, tr); err != nil {
			return fmt.Errorf("extracting %q: %w", hdr.Name, err)
		}
	}
}

func (e *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name := cleanName(hdr.Name)
	if name == "/" {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("entry would replace the extraction root")
		}
		// The root's own metadata belongs to whoever owns the target.
		return nil
	}
	dir, base := path.Split(name)
	if isWhiteoutName(base) {
		return e.whiteout(dir, base)
	}
	parent, err := e.parent(dir)
	if err != nil {
		return err
	}
	target := filepath.Join(parent, base)
	if err := e.create(hdr, name, target, r); err != nil {
		return err
	}
	e.markWritten(name)
	return nil
}

// parent resolves (and creates) the directory an entry goes into.
func (e *extractor) parent(dir string) (string, error) {
	if dir == e.lastDir && e.lastParent != "" {
		return e.lastParent, nil
	}
	p, err := resolveIn(e.root, dir)
	if err != nil {
		return "", fmt.Errorf("resolving parent directory: %w", err)
	}
	// Every existing component of p is a real directory (resolveIn
	// followed the symlinks), so only missing ones are added.
	if err := mkdirAll(p); err != nil {
		return "", fmt.Errorf("creating parent directory: %w", err)
	}
	e.lastDir, e.lastParent = dir, p
	return p, nil
}

func (e *extractor) invalidate() { e.lastDir, e.lastParent = "", "" }

func (e *extractor) markWritten(name string) {
	if e.opts.Mode != Flatten {
		return
	}
	for name != "/" && !e.written[name] {
		e.written[name] = true
		name = path.Dir(name)
	}
}

func (e *extractor) create(hdr *tar.Header, name, target string, r io.Reader) error {
	if hdr.Typeflag == tar.TypeDir {
		if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
			return e.metadata(hdr, name, target)
		}
	}
	if err := e.clear(target); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if e.content += hdr.Size; e.opts.MaxSize > 0 && e.content > e.opts.MaxSize {
			return ErrTooLarge
		}
		if err := e.regular(target, r); err != nil {
			return err
		}
	case tar.TypeDir:
		e.invalidate()
		if err := unix.Mkdir(target, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: target, Err: err}
		}
	case tar.TypeSymlink:
		e.invalidate()
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		return e.hardlink(hdr, target)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if e.opts.Export && hdr.Typeflag != tar.TypeFifo {
			return nil
		}
		if err := e.special(hdr, target); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	return e.metadata(hdr, name, target)
}

// clear removes whatever is at target so the entry replaces it; the final
// component is never followed, so a symlink there is removed, not its target.
func (e *extractor) clear(target string) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	e.invalidate()
	if fi.IsDir() {
		return os.RemoveAll(target)
	}
	return os.Remove(target)
}

func (e *extractor) regular(target string, r io.Reader) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	// Hiding f's ReadFrom keeps the copy on e.buf: os.File's fallback
	// would allocate a buffer per file.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, r, e.buf); err != nil {
		f.Close()
		return fmt.Errorf("writing content: %w", err)
	}
	return f.Close()
}

func (e *extractor) hardlink(hdr *tar.Header, target string) error {
	ldir, lbase := path.Split(cleanName(hdr.Linkname))
	lparent, err := resolveIn(e.root, ldir)
	if err != nil {
		return fmt.Errorf("resolving hardlink target %q: %w", hdr.Linkname, err)
	}
	old := filepath.Join(lparent, lbase)
	fi, err := os.Lstat(old)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hardlink target %q is a directory", hdr.Linkname)
	}
	// In an overlay lower a char device 0:0 is a whiteout: a second name
	// for one would hide that name in the layers below although the stream
	// holds no whiteout for it (a 0:0 entry is refused for the same reason).
	if e.opts.Mode == OverlayLower && overlayfs.IsWhiteout(fi) {
		return fmt.Errorf("hardlink target %q is an overlay whiteout", hdr.Linkname)
	}
	// Flags 0: link the target itself, even when it is a symlink.
	if err := unix.Linkat(unix.AT_FDCWD, old, unix.AT_FDCWD, target, 0); err != nil {
		return &os.LinkError{Op: "link", Old: old, New: target, Err: err}
	}
	return nil
}

func (e *extractor) special(hdr *tar.Header, target string) error {
	mode := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode = unix.S_IFCHR
		if e.opts.Mode == OverlayLower && hdr.Devmajor == 0 && hdr.Devminor == 0 {
			// Overlayfs would read it as a whiteout, hiding the lower file.
			return errors.New("character device 0:0 cannot be stored in an overlay lower directory")
		}
	case tar.TypeBlock:
		mode = unix.S_IFBLK
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if mode == unix.S_IFIFO {
		if err := unix.Mknod(target, mode|0o600, int(dev)); err != nil {
			return &os.PathError{Op: "mknod", Path: target, Err: err}
		}
		return nil
	}
	// Recorded in an empty file where the kernel refuses nodes (rootless).
	return owners.Mknod(policy(e.opts.Owners), target, mode|0o600, dev)
}
