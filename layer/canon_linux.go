package layer

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/internal/owners"
)

// ErrNotCanonical says an archive's layer cannot be written as a stream
// with the bytes extracting it and walking the tree would give: the caller
// extracts it (Extract, then WriteBlob), which also reports any error the
// archive holds.
var ErrNotCanonical = errors.New("archive needs extracting to be written as a layer")

// DefaultCanonIndex bounds the memory of a CanonicalArchive's index: about
// canonEntryCost bytes per entry plus its name, so 8 MiB holds some 17,000
// entries (a Debian minbase has 8,800, Alpine's minirootfs 530), and a
// build writing it stays within 64 MiB (W2 peaks at 55 MiB with the Debian
// minbase's 4 MiB index). A larger archive is extracted.
const DefaultCanonIndex = 8 << 20

// canonEntryCost is what one entry of the index costs beyond its name: its
// node, inode, map slots and a directory's first time. BenchmarkCanonical
// measures it: 468 heap bytes per entry for the Debian minbase.
const canonEntryCost = 448

// CanonOptions says how ReadCanonical stands in for extracting an archive
// into a fresh directory (Extract, Flatten, owners on disk) and writing that
// directory as a layer (WriteBlob, FromDir).
type CanonOptions struct {
	// Write are the layer's options: Epoch and Compression are used; a
	// Source other than FromDir or Owners not on disk (owners.Host) make
	// ReadCanonical return ErrNotCanonical.
	Write WriteOptions
	// TmpDir holds the spool of file contents (unlinked at once).
	TmpDir string
	// Start is no later than when the extraction would have begun: a
	// directory the archive implies without an entry gets the time it is
	// created, which only an Epoch before Start makes reproducible.
	Start time.Time
	// RootSetgid: the directory extracted into has the setgid bit, so the
	// directories created in it take its group.
	RootSetgid bool
	// MaxIndex bounds the index in bytes; 0 means DefaultCanonIndex.
	MaxIndex int64
}

// CanonicalArchive is an archive read once into an index of the tree
// extracting it gives, with the content of its regular files spooled to
// an unlinked temporary file: WriteTar writes that tree's canonical stream
// (the bytes WriteTar of the extracted directory gives) in walk order,
// whatever order the archive had.
type CanonicalArchive struct {
	opts    CanonOptions
	root    *cnode
	spool   *os.File
	spooled int64
	// spoolW writes the spool on a goroutine of its own, so the
	// decompression does not wait for the page cache.
	spoolW *bufio.Writer
	buf    []byte
	// dirTimes is the first time a directory entry gave each name: the
	// extractor sets directory times last, the first entry's last.
	dirTimes map[string]time.Time
	implied  bool // a directory without an entry exists
	budget   int64
	seq      int
	inOrder  bool
	euid     int
	egid     int
}

// cnode is a name in the tree; hard links share their cinode.
type cnode struct {
	ino      *cinode
	children map[string]*cnode // directories only
	seq      int               // position of the entry that made it, for InOrder
}

// cinode is a file's metadata as extracting it leaves it on disk.
type cinode struct {
	typ          byte // tar.TypeReg, TypeDir, TypeSymlink, TypeChar, TypeBlock, TypeFifo
	mode         int64
	uid, gid     int
	mtime        time.Time
	off, size    int64 // content in the spool
	link         string
	major, minor int64
	nlink        int
}

// notCanonical wraps ErrNotCanonical with why, for messages and tests.
func notCanonical(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotCanonical, fmt.Sprintf(format, args...))
}

// ReadCanonical reads the archive r (plain or compressed, as Extract
// takes) into an index of the tree extracting it would give. It returns
// ErrNotCanonical, having written nothing anywhere but its spool, for
// whatever it does not reproduce exactly: an archive Extract or the
// builder's ADD refuses (errors, .wh.* names, character devices 0:0),
// names through symlinks, hard links it cannot resolve, xattrs the layer
// keeps (the filesystem may refuse or rewrite them), times, ids, device
// numbers or names the filesystem might not hold as they are, an index
// larger than MaxIndex. The caller reads the rest of r (the archive's
// hash covers all of it); Close removes the spool.
func ReadCanonical(ctx context.Context, r io.Reader, opts CanonOptions) (*CanonicalArchive, error) {
	if opts.Write.Source != FromDir || (opts.Write.Owners != nil && opts.Write.Owners != owners.Host) {
		return nil, notCanonical("only a plain tree with owners on disk")
	}
	if opts.MaxIndex == 0 {
		opts.MaxIndex = DefaultCanonIndex
	}
	dec, _, err := Decompress(r)
	if err != nil {
		return nil, notCanonical("%v", err)
	}
	defer dec.Close()
	spool, err := os.CreateTemp(opts.TmpDir, "canon-")
	if err != nil {
		return nil, fmt.Errorf("creating archive spool: %w", err)
	}
	// Unlinked at once: a killed build leaves nothing behind.
	os.Remove(spool.Name())
	a := &CanonicalArchive{
		opts:     opts,
		root:     &cnode{ino: &cinode{typ: tar.TypeDir}, children: map[string]*cnode{}},
		spool:    spool,
		dirTimes: map[string]time.Time{},
		budget:   opts.MaxIndex,
		euid:     os.Geteuid(),
		egid:     os.Getegid(),
		buf:      make([]byte, 256<<10),
	}
	if opts.RootSetgid {
		a.root.ino.mode = 0o2000
	}
	async := newAsyncWriter(spool)
	a.spoolW = bufio.NewWriterSize(async, 256<<10)
	err = a.read(ctx, tar.NewReader(dec))
	if ferr := a.spoolW.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing archive spool: %w", ferr)
	}
	if aerr := async.Close(); err == nil && aerr != nil {
		err = fmt.Errorf("writing archive spool: %w", aerr)
	}
	if err != nil {
		a.Close()
		return nil, err
	}
	// Extract reads the stream to its end; an error there fails it.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		a.Close()
		return nil, notCanonical("reading archive: %v", err)
	}
	if err := a.checkDirTimes(); err != nil {
		a.Close()
		return nil, err
	}
	if a.implied {
		e := a.opts.Write.Epoch
		if e == nil || !e.Truncate(time.Second).Before(a.opts.Start.Truncate(time.Second)) {
			// Such a directory's time is the wall clock's.
			return nil, errors.Join(notCanonical("a directory without an entry and no epoch before now"), a.Close())
		}
	}
	return a, nil
}

// Close removes the spool.
func (a *CanonicalArchive) Close() error { return a.spool.Close() }

// InOrder reports whether the archive already listed its entries in the
// canonical order WriteTar writes (valid after WriteTar).
func (a *CanonicalArchive) InOrder() bool { return a.inOrder }

func (a *CanonicalArchive) read(ctx context.Context, tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return notCanonical("reading archive: %v", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		a.seq++
		if err := a.entry(hdr, tr); err != nil {
			return err
		}
	}
}

// maxCanonName bounds names and link targets: the extraction's own limits
// (PATH_MAX with the host directory in front) depend on where it runs.
const maxCanonName = 2048

// entry applies one header as extractor.entry does.
func (a *CanonicalArchive) entry(hdr *tar.Header, r io.Reader) error {
	// The builder's ADD refuses these (checkArchive), in any header: it
	// names them.
	if isWhiteoutName(path.Base(hdr.Name)) || (hdr.Typeflag == tar.TypeChar && hdr.Devmajor == 0 && hdr.Devminor == 0) {
		return notCanonical("entry %q would be a whiteout", hdr.Name)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name := cleanName(hdr.Name)
	if name == "/" {
		if hdr.Typeflag != tar.TypeDir {
			return notCanonical("entry %q replaces the root", hdr.Name)
		}
		return nil
	}
	if len(name) > maxCanonName {
		return notCanonical("name of %d bytes", len(name))
	}
	dir, base := path.Split(name)
	if len(base) > 255 {
		return notCanonical("name component of %d bytes", len(base))
	}
	if err := a.spend(int64(len(base)) + canonEntryCost); err != nil {
		return err
	}
	parent, err := a.parent(dir)
	if err != nil {
		return err
	}
	if err := a.checkMeta(hdr); err != nil {
		return err
	}
	old := parent.children[base]
	if hdr.Typeflag == tar.TypeDir && old != nil && old.ino.typ == tar.TypeDir {
		a.metadata(hdr, name, old.ino)
		return nil
	}
	if old != nil {
		drop(old)
		delete(parent.children, base)
	}
	n := &cnode{seq: a.seq}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		n.ino = &cinode{typ: tar.TypeReg, off: a.spooled}
		written, err := io.CopyBuffer(a.spoolW, r, a.buf)
		if err != nil {
			// The extraction reports it (a spool write error, a full disk,
			// surfaces when the spool is flushed).
			return notCanonical("reading %q: %v", hdr.Name, err)
		}
		n.ino.size = written
		a.spooled += written
	case tar.TypeDir:
		n.ino, n.children = &cinode{typ: tar.TypeDir}, map[string]*cnode{}
	case tar.TypeSymlink:
		if hdr.Linkname == "" || len(hdr.Linkname) > maxCanonName {
			return notCanonical("symlink %q to %d bytes", hdr.Name, len(hdr.Linkname))
		}
		n.ino = &cinode{typ: tar.TypeSymlink, link: hdr.Linkname}
	case tar.TypeLink:
		// The link shares the target's inode; extractor.hardlink applies
		// none of the link entry's own metadata.
		target, err := a.linkTarget(hdr.Linkname)
		if err != nil {
			return err
		}
		n.ino = target.ino
		n.ino.nlink++
		parent.children[base] = n
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Typeflag != tar.TypeFifo && (hdr.Devmajor < 0 || hdr.Devmajor >= 1<<12 || hdr.Devminor < 0 || hdr.Devminor >= 1<<20) {
			// The kernel's dev_t holds 12 bits of major and 20 of minor.
			return notCanonical("device %d:%d", hdr.Devmajor, hdr.Devminor)
		}
		n.ino = &cinode{typ: hdr.Typeflag}
		if hdr.Typeflag != tar.TypeFifo {
			n.ino.major, n.ino.minor = hdr.Devmajor, hdr.Devminor
		}
	default:
		return notCanonical("entry %q of type %q", hdr.Name, hdr.Typeflag)
	}
	n.ino.nlink = 1
	parent.children[base] = n
	a.metadata(hdr, name, n.ino)
	return nil
}

func (a *CanonicalArchive) spend(n int64) error {
	if a.budget -= n; a.budget < 0 {
		return notCanonical("index larger than %d bytes", a.opts.MaxIndex)
	}
	return nil
}

// checkMeta refuses what the filesystem might not store as the header
// says: ids chown cannot take as they are, times utimensat or the
// filesystem would change, and xattrs the layer keeps (setting them may
// fail, be skipped or be rewritten by the kernel).
func (a *CanonicalArchive) checkMeta(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeLink {
		return nil
	}
	if hdr.Uid < 0 || hdr.Uid >= 1<<31 || hdr.Gid < 0 || hdr.Gid >= 1<<31 {
		return notCanonical("owner %d:%d", hdr.Uid, hdr.Gid)
	}
	if s := hdr.ModTime.Unix(); s < 0 || s >= 1<<31 {
		return notCanonical("time %v", hdr.ModTime)
	}
	for k := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(k, paxXattrPrefix); ok && keepXattr(x) {
			return notCanonical("xattr %s", x)
		}
	}
	return nil
}

// metadata is extractor.metadata on the index: owner and mode now, a
// directory's time when the archive has been read.
func (a *CanonicalArchive) metadata(hdr *tar.Header, name string, ino *cinode) {
	ino.uid, ino.gid = hdr.Uid, hdr.Gid
	ino.mode = hdr.Mode & 0o7777
	if ino.typ == tar.TypeSymlink {
		ino.mode = 0o777 // what lstat gives for every symlink
	}
	if ino.typ == tar.TypeDir {
		if _, ok := a.dirTimes[name]; !ok {
			a.dirTimes[name] = hdr.ModTime
		}
		return
	}
	ino.mtime = hdr.ModTime
}

// parent finds the directory dir (a /-rooted clean path ending in "/"),
// adding the directories the extractor's mkdirAll would create. A symlink
// on the way (resolveIn follows it) or a non-directory (mkdirAll fails)
// is left to the extraction.
func (a *CanonicalArchive) parent(dir string) (*cnode, error) {
	cur := a.root
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		next := cur.children[c]
		if next == nil {
			if isWhiteoutName(c) {
				// mkdirAll makes it; the walk refuses it.
				return nil, notCanonical("implied directory %q", c)
			}
			if cur.ino.mode&0o2000 != 0 {
				// mkdir takes the setgid parent's group.
				return nil, notCanonical("implied directory in a setgid directory")
			}
			if err := a.spend(int64(len(c)) + canonEntryCost); err != nil {
				return nil, err
			}
			next = &cnode{ino: &cinode{typ: tar.TypeDir, mode: 0o755, uid: a.euid, gid: a.egid, nlink: 1}, children: map[string]*cnode{}, seq: a.seq}
			cur.children[c] = next
			a.implied = true
		} else if next.ino.typ != tar.TypeDir {
			return nil, notCanonical("parent %q is not a directory", c)
		}
		cur = next
	}
	return cur, nil
}

// linkTarget finds a hard link's target without creating anything, as
// extractor.hardlink resolves it.
func (a *CanonicalArchive) linkTarget(link string) (*cnode, error) {
	name := cleanName(link)
	dir, base := path.Split(name)
	cur := a.root
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		if cur = cur.children[c]; cur == nil || cur.ino.typ != tar.TypeDir {
			return nil, notCanonical("hard link to %q", link)
		}
	}
	t := cur.children[base]
	if base == "" || t == nil || t.ino.typ == tar.TypeDir {
		return nil, notCanonical("hard link to %q", link)
	}
	return t, nil
}

// drop removes n and everything below it from the index: its inodes lose
// a name each.
func drop(n *cnode) {
	n.ino.nlink--
	for _, c := range n.children {
		drop(c)
	}
}

// checkDirTimes leaves to the extraction a directory time its finish would
// resolve through a symlink the archive made later, or fail to resolve (a
// parent that became a file).
func (a *CanonicalArchive) checkDirTimes() error {
	for name := range a.dirTimes {
		cur := a.root
		parts := strings.Split(strings.Trim(name, "/"), "/")
		for i, c := range parts {
			if cur = cur.children[c]; cur == nil {
				break
			}
			if cur.ino.typ == tar.TypeSymlink || (cur.ino.typ != tar.TypeDir && i < len(parts)-1) {
				return notCanonical("directory %q replaced", name)
			}
		}
	}
	return nil
}

// WriteTar writes the canonical tar stream of the tree: what WriteTar of
// the directory extracting the archive gives.
func (a *CanonicalArchive) WriteTar(ctx context.Context, w io.Writer) error {
	cw := &canonWriter{ctx: ctx, a: a, tw: tar.NewWriter(w), links: map[*cinode]string{}, buf: make([]byte, 256<<10)}
	a.inOrder = true
	if err := cw.walk(a.root, ""); err != nil {
		return err
	}
	if err := cw.tw.Close(); err != nil {
		return fmt.Errorf("finishing tar stream: %w", err)
	}
	return nil
}

// WriteLayer writes the layer blob, compressed as the options say, to w
// and returns its diffID.
func (a *CanonicalArchive) WriteLayer(ctx context.Context, w io.Writer) (v1.Hash, error) {
	return compressTar(w, a.opts.Write.Compression, func(tw io.Writer) error { return a.WriteTar(ctx, tw) })
}

type canonWriter struct {
	ctx     context.Context
	a       *CanonicalArchive
	tw      *tar.Writer
	links   map[*cinode]string
	buf     []byte
	lastSeq int
}

func (cw *canonWriter) walk(d *cnode, rel string) error {
	names := make([]string, 0, len(d.children))
	for n := range d.children {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, base := range names {
		if err := cw.ctx.Err(); err != nil {
			return err
		}
		if err := cw.entry(d.children[base], path.Join(rel, base)); err != nil {
			return err
		}
	}
	return nil
}

func (cw *canonWriter) entry(n *cnode, name string) error {
	if n.seq < cw.lastSeq {
		cw.a.inOrder = false
	}
	cw.lastSeq = n.seq
	ino := n.ino
	mtime := ino.mtime
	if ino.typ == tar.TypeDir {
		t, ok := cw.a.dirTimes[cleanName(name)]
		if !ok {
			// Made by the extraction: its time is clamped to the epoch
			// (ReadCanonical checked there is one before Start).
			t = *cw.a.opts.Write.Epoch
		}
		mtime = t
	}
	hdr := &tar.Header{Name: name, Mode: ino.mode, Uid: ino.uid, Gid: ino.gid, ModTime: clampTime(mtime, cw.a.opts.Write.Epoch)}
	if ino.typ != tar.TypeDir && ino.nlink > 1 {
		if first, ok := cw.links[ino]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return cw.writeHeader(hdr)
		}
		cw.links[ino] = name
	}
	switch ino.typ {
	case tar.TypeReg:
		hdr.Typeflag, hdr.Size = tar.TypeReg, ino.size
		if err := cw.writeHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(cw.tw, io.NewSectionReader(cw.a.spool, ino.off, ino.size), cw.buf); err != nil {
			return fmt.Errorf("copying %s from the archive spool: %w", shortName(name), err)
		}
		return nil
	case tar.TypeDir:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := cw.writeHeader(hdr); err != nil {
			return err
		}
		return cw.walk(n, name)
	case tar.TypeSymlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, ino.link
	default:
		hdr.Typeflag, hdr.Devmajor, hdr.Devminor = ino.typ, ino.major, ino.minor
	}
	return cw.writeHeader(hdr)
}

func (cw *canonWriter) writeHeader(hdr *tar.Header) error {
	canonicalize(hdr)
	if err := cw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header: %w", err)
	}
	return nil
}
