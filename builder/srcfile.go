package builder

import (
	"fmt"
	"io/fs"
	"path"
	"syscall"
	"time"
)

// srcFile is one file a COPY or ADD takes from its source, with every
// attribute of it the writer uses. It is the single description both the
// cache key and the written layer come from: the key is the JSON encoding
// of the plan's srcFiles, and the writer takes a file's attributes from
// here and nowhere else, so an attribute cannot reach a layer without
// being keyed. A field that is read but deliberately not keyed is marked
// json:"-" and says why.
type srcFile struct {
	// Dst is where the file lands in the image (absolute, resolved).
	Dst  string   `json:"dst"`
	Kind fileKind `json:"kind"`
	// Mode holds the permission bits with setuid, setgid and sticky.
	Mode fs.FileMode `json:"mode"`
	// Owner is the source file's owner where the writer keeps it (COPY
	// --from without --chown); nil where the writer does not read it
	// (context files land as 0:0 or --chown's ids, which the instruction
	// holds).
	Owner *keyOwner `json:"owner,omitempty"`
	// Size and Sum (sha256) describe a regular file's content. Sum is set
	// for sources whose content the key covers file by file (the build
	// context); a stage's or image's files are covered by its key. The
	// writer checks what it copies against Sum.
	Size int64  `json:"size,omitempty"`
	Sum  string `json:"sum,omitempty"`
	// Link is a symlink's target, as written.
	Link string `json:"link,omitempty"`
	// Dev is a device node's major and minor number.
	Dev *devNumber `json:"dev,omitempty"`
	// Xattrs are the extended attributes a layer keeps (keptXattr), sorted.
	Xattrs []xattr `json:"xattrs,omitempty"`
	// LinkTo is the Dst of an earlier file of this COPY that is the same
	// inode (a hard link): this one is written as a link to it, or, when a
	// later source replaced that name meanwhile, as a file of its own (its
	// other fields describe it whole either way).
	LinkTo string `json:"linkTo,omitempty"`

	// Mtime is copied into the layer but not keyed, as BuildKit does: a
	// touch keeps the cache. With SOURCE_DATE_EPOCH, new layers clamp later
	// times to it, so warm and cold builds agree unless a file's mtime
	// moves between two times both earlier than the epoch
	// (TestMutationDocumentedTradeoffs).
	Mtime time.Time `json:"-"`
	// entry is where the content is read; the writer reads nothing else
	// of it.
	entry entry
}

// fileKind is a file's type.
type fileKind string

const (
	kindDir     fileKind = "dir"
	kindReg     fileKind = "file"
	kindSymlink fileKind = "symlink"
	kindChar    fileKind = "char"
	kindBlock   fileKind = "block"
	kindFifo    fileKind = "fifo"
)

// keyOwner is a numeric owner as a key records it.
type keyOwner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

type devNumber struct {
	Major uint32 `json:"major"`
	Minor uint32 `json:"minor"`
}

// xattr is one extended attribute.
type xattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// describer makes the srcFiles of one COPY: it tracks hard links across
// all the COPY's sources, so the first path written of an inode is the one
// the others link to.
type describer struct {
	from    srcTree
	context bool              // from is the build context: hash contents, drop owners
	links   map[inode]srcFile // the first file described of each inode
}

type inode struct{ dev, ino uint64 }

// describe is the srcFile of the source file e, landing at dst.
func (d *describer) describe(e entry, dst string) (srcFile, error) {
	f := srcFile{Dst: dst, Mode: e.info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), Mtime: e.info.ModTime(), entry: e}
	st, _ := e.info.Sys().(*syscall.Stat_t)
	if !d.context && st != nil {
		f.Owner = &keyOwner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	switch mt := e.info.Mode(); {
	case mt.IsDir():
		f.Kind = kindDir
	case mt.IsRegular():
		f.Kind, f.Size = kindReg, e.info.Size()
	case mt&fs.ModeSymlink != 0:
		f.Kind = kindSymlink
	case mt&fs.ModeCharDevice != 0:
		f.Kind = kindChar
	case mt&fs.ModeDevice != 0:
		f.Kind = kindBlock
	case mt&fs.ModeNamedPipe != 0:
		f.Kind = kindFifo
	default:
		// Sockets are not copied, as in Docker.
		return srcFile{}, errSkip
	}
	if f.Kind == kindDir || st == nil || st.Nlink < 2 {
		return f, d.fill(&f, st)
	}
	id := inode{uint64(st.Dev), st.Ino}
	if first, ok := d.links[id]; ok {
		// The same inode: what was read of it holds for this name too.
		f.LinkTo, f.Size, f.Sum, f.Link, f.Dev, f.Xattrs = first.Dst, first.Size, first.Sum, first.Link, first.Dev, first.Xattrs
		return f, nil
	}
	if err := d.fill(&f, st); err != nil {
		return f, err
	}
	if d.links == nil {
		d.links = map[inode]srcFile{}
	}
	d.links[id] = f
	return f, nil
}

// fill reads what the kind of f needs: a link's target, a node's number,
// a file's content hash, the kept xattrs.
func (d *describer) fill(f *srcFile, st *syscall.Stat_t) error {
	var err error
	switch f.Kind {
	case kindSymlink:
		f.Link, err = d.from.linkTarget(f.entry)
		return err
	case kindChar, kindBlock:
		if st != nil {
			f.Dev = &devNumber{Major: unixMajor(uint64(st.Rdev)), Minor: unixMinor(uint64(st.Rdev))}
		}
	case kindReg:
		if d.context {
			if f.Sum, err = sumOf(d.from, f.entry); err != nil {
				return err
			}
		}
	}
	f.Xattrs, err = d.from.xattrs(f.entry)
	return err
}

// errSkip marks a source file a COPY leaves out.
var errSkip = fmt.Errorf("skipped")

// walk describes the tree below the directory src (not src itself) in
// write order: a directory before its contents, siblings sorted by name.
func (d *describer) walk(src, dst string, out []srcFile) ([]srcFile, error) {
	names, err := d.from.readDir(src)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	for _, n := range names {
		e, err := d.from.lstat(path.Join(src, n))
		if err != nil {
			return nil, err
		}
		f, err := d.describe(e, path.Join(dst, n))
		if err == errSkip {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		if f.Kind == kindDir {
			if out, err = d.walk(path.Join(src, n), path.Join(dst, n), out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// unixMajor and unixMinor split a Linux dev_t (glibc's encoding).
func unixMajor(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&0xfffff000) }
func unixMinor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&0xffffff00) }
