package builder

import (
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/owners"
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
	// ino is the inode of a file with more than one link, for describer.
	ino *inode
	// staged is the content read for the key, when the describer staged
	// it (stager); the writer places it instead of reading entry again.
	staged *stagedFile
	// noStage: the file's content is not copied as a file (an archive ADD
	// unpacks), so staging it would be wasted.
	noStage bool
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
// the others link to. describe and walk list the files; fill then reads
// what each needs (content hashes, link targets, xattrs), in parallel.
type describer struct {
	from    srcTree
	context bool             // from is the build context: hash contents, drop owners
	links   map[inode]string // the Dst of the first file described of each inode
	// owners reads the owners of files of a stage or an image: recorded ones in a build
	// that cannot chown (nil: on disk).
	owners owners.Policy
	// stage, when set, keeps a copy of each context file hashed (nil: hash only).
	stage *stager
}

type inode struct{ dev, ino uint64 }

// describe is the srcFile of the source file e, landing at dst; fill
// completes it.
func (d *describer) describe(e entry, dst string) (srcFile, error) {
	f := srcFile{Dst: dst, Mode: e.info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), Mtime: e.info.ModTime(), entry: e}
	st, _ := e.info.Sys().(*syscall.Stat_t)
	if !d.context && st != nil {
		uid, gid, err := d.owner(e, st)
		if err != nil {
			return srcFile{}, err
		}
		f.Owner = &keyOwner{UID: uid, GID: gid}
		if e.info.Mode().IsRegular() && st.Size == 0 {
			if recorded, ok := recordedDevice(d.owners, e.host); ok {
				// A node the rootless build that made the stage could not make.
				f.Kind, f.Dev = recorded.kind, &recorded.dev
				return f, nil
			}
		}
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
		return f, nil
	}
	f.ino = &inode{uint64(st.Dev), st.Ino}
	if first, ok := d.links[*f.ino]; ok {
		// The same inode: it takes what fill reads of the first.
		f.LinkTo = first
		return f, nil
	}
	if d.links == nil {
		d.links = map[inode]string{}
	}
	d.links[*f.ino] = f.Dst
	return f, nil
}

// owner is the image owner of e, a file of a stage or an image.
func (d *describer) owner(e entry, st *syscall.Stat_t) (int, int, error) {
	if d.owners == nil || d.owners.OnDisk() {
		return int(st.Uid), int(st.Gid), nil
	}
	var ust unix.Stat_t
	if err := unix.Lstat(e.host, &ust); err != nil {
		return 0, 0, err
	}
	return d.owners.Owner(e.host, &ust)
}

// recorded is a device node owners.Mknod recorded in an empty file.
type recorded struct {
	kind fileKind
	dev  devNumber
}

func recordedDevice(pol owners.Policy, p string) (recorded, bool) {
	if pol == nil || !pol.RecordsDevices() {
		return recorded{}, false
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return recorded{}, false
	}
	mode, dev, ok := owners.Device(pol, p, &st)
	if !ok {
		return recorded{}, false
	}
	r := recorded{kind: kindChar, dev: devNumber{Major: unix.Major(dev), Minor: unix.Minor(dev)}}
	if mode&unix.S_IFMT == unix.S_IFBLK {
		r.kind = kindBlock
	}
	return r, true
}

// fill reads, for every file of files, what its kind needs: a link's
// target, a node's number, a file's content hash, the kept xattrs, a few
// files at a time (the first error in files' order wins); a hard link then
// takes what was read of the first name of its inode.
func (d *describer) fill(files []*srcFile) error {
	firsts := map[inode]*srcFile{}
	var work []*srcFile
	for _, f := range files {
		switch {
		case f.LinkTo != "" && f.ino != nil:
		case f.ino != nil:
			firsts[*f.ino] = f
			work = append(work, f)
		default:
			work = append(work, f)
		}
	}
	errs := make([]error, len(work))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 8, max(len(work), 1)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = d.fillOne(work[i])
			}
		})
	}
	for i := range work {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for _, f := range files {
		if f.LinkTo != "" && f.ino != nil {
			first := firsts[*f.ino]
			f.Size, f.Sum, f.Link, f.Dev, f.Xattrs = first.Size, first.Sum, first.Link, first.Dev, first.Xattrs
		}
	}
	return nil
}

func (d *describer) fillOne(f *srcFile) error {
	var err error
	switch f.Kind {
	case kindSymlink:
		if f.Link, err = d.from.linkTarget(f.entry); err != nil {
			return err
		}
	case kindChar, kindBlock:
		if st, ok := f.entry.info.Sys().(*syscall.Stat_t); ok && f.Dev == nil {
			f.Dev = &devNumber{Major: unixMajor(uint64(st.Rdev)), Minor: unixMinor(uint64(st.Rdev))}
		}
	case kindReg:
		if c, ok := d.from.(*contextFS); ok && d.stage != nil && !f.noStage {
			if f.Sum, f.staged, err = d.stage.file(c, f); err != nil {
				return err
			}
		} else if d.context {
			if f.Sum, err = sumOf(d.from, f.entry); err != nil {
				return err
			}
		}
	}
	f.Xattrs, err = d.from.xattrs(f.entry)
	return err
}

// fileRefs are pointers to every srcFile of the lists, in order, for fill.
func fileRefs(lists ...[]srcFile) []*srcFile {
	var out []*srcFile
	for _, l := range lists {
		for i := range l {
			out = append(out, &l[i])
		}
	}
	return out
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

// dirFiles describes what the directory source p copies: the whole tree
// below it, or, with COPY --parents' pattern or --exclude, what they
// select. A required pattern that selects nothing is an error, as in
// BuildKit.
func (op *copyOp) dirFiles(d *describer, p *planned) ([]srcFile, error) {
	if !op.parents && op.excluded == nil {
		return d.walk(p.srcPath, p.Dst, nil)
	}
	sel := selection{exclude: op.excluded}
	if op.parents {
		var err error
		if sel.include, err = patternmatcher.New([]string{p.include}); err != nil {
			return nil, fmt.Errorf("%s --parents %s: %w", op.name, p.include, err)
		}
	}
	files, err := d.selectFiles(p.srcPath, p.Dst, "", sel, patternmatcher.MatchInfo{}, patternmatcher.MatchInfo{})
	if err != nil {
		return nil, err
	}
	if p.required {
		want := path.Join(p.Dst, p.include)
		if !slices.ContainsFunc(files, func(f srcFile) bool { return f.Dst == want || strings.HasPrefix(f.Dst, want+"/") }) {
			return nil, fmt.Errorf("%s: no such file or directory in %s", path.Join(displaySrc(p.srcPath), p.include), op.where())
		}
	}
	return files, nil
}

// selection is what COPY --parents and --exclude keep of a directory
// source: paths relative to it that include matches (nil: all) and
// exclude does not.
type selection struct {
	include, exclude *patternmatcher.PatternMatcher
}

// reincludes reports whether a "!" exclude pattern may select something
// below an excluded directory.
func (s selection) reincludes() bool { return s.exclude != nil && s.exclude.Exclusions() }

// selectFiles is walk with a selection, as BuildKit's copier (fsutil)
// applies one: a file lands if selected; a directory lands if selected or
// if something below it does (then with its own metadata, as a parent);
// an excluded directory is not even read unless a "!" pattern may
// re-include something below it. Nothing is followed: a symlink is a file
// here, so a selection never leaves the source tree.
func (d *describer) selectFiles(src, dst, rel string, sel selection, inc, exc patternmatcher.MatchInfo) ([]srcFile, error) {
	names, err := d.from.readDir(src)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	var out []srcFile
	for _, n := range names {
		r := path.Join(rel, n)
		selected, excluded := true, false
		var incInfo, excInfo patternmatcher.MatchInfo
		if sel.include != nil {
			if selected, incInfo, err = sel.include.MatchesUsingParentResults(r, inc); err != nil {
				return nil, err
			}
		}
		if sel.exclude != nil {
			var m bool
			if m, excInfo, err = sel.exclude.MatchesUsingParentResults(r, exc); err != nil {
				return nil, err
			}
			if m {
				selected, excluded = false, true
			}
		}
		if !selected && sel.include == nil && !sel.reincludes() {
			continue
		}
		e, err := d.from.lstat(path.Join(src, n))
		if err != nil {
			return nil, err
		}
		if !e.info.IsDir() {
			if !selected {
				continue
			}
			f, err := d.describe(e, path.Join(dst, n))
			if err == errSkip {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		var below []srcFile
		if !excluded || sel.reincludes() {
			if below, err = d.selectFiles(path.Join(src, n), path.Join(dst, n), r, sel, incInfo, excInfo); err != nil {
				return nil, err
			}
		}
		if !selected && len(below) == 0 {
			continue
		}
		f, err := d.describe(e, path.Join(dst, n))
		if err != nil {
			return nil, err
		}
		out = append(append(out, f), below...)
	}
	return out, nil
}
