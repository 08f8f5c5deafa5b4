package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// srcTree is where COPY reads from: the build context or the merged view
// of a stage or image.
type srcTree interface {
	tree
	readDir(p string) ([]string, error)
	// open opens the regular file e for reading its content.
	open(e entry) (*os.File, error)
	// linkTarget is the symlink e's target as written.
	linkTarget(e entry) (string, error)
	// xattrs are the extended attributes of e a layer keeps, sorted.
	xattrs(e entry) ([]xattr, error)
}

// owner is a numeric uid:gid.
type owner struct{ uid, gid int }

// copyOp is one COPY or ADD with everything resolved except the files.
type copyOp struct {
	name     string // COPY or ADD, for errors
	sources  []string
	heredocs []heredoc
	dest     string // absolute, trailing "/" kept
	from     srcTree
	context  bool   // from is the build context: files become 0:0
	add      bool   // ADD: local archives are extracted
	chown    *owner // nil: 0:0 from the context, kept from an image
	mode     *fs.FileMode
	image    mergedFS // the image the files land in
	checksum string   // ADD --checksum
	dl       downloader
}

type heredoc struct {
	name string
	data string
}

// planned is one thing a COPY writes: a file or tree, an archive to
// extract, a download or literal content. Its exported fields, with its
// Files', are what the cache key covers; the writer reads nothing else.
type planned struct {
	// Dst is where it lands: the file's path, or the directory that a
	// directory source's contents or an archive's entries go into.
	Dst string `json:"dst"`
	// Dir: a directory source, whose contents (Files) land in Dst.
	Dir bool `json:"dir,omitempty"`
	// Extract: ADD of a local archive (Files[0]), unpacked into Dst.
	Extract bool `json:"extract,omitempty"`
	// Data is a heredoc's content.
	Data *string `json:"data,omitempty"`
	// URLTime is a download's Last-Modified time, which the file gets.
	URLTime *time.Time `json:"urlTime,omitempty"`
	// Files are the source files in write order; for a context source
	// they are described when planning, for a stage's or image's when the
	// step runs (its key covers them).
	Files []srcFile `json:"files,omitempty"`

	src     entry  // the source itself
	srcPath string // in the source tree, for messages
}

// destination resolves op.dest in the image as a chroot would and says
// whether it is a directory (it ends in "/" or already is one).
func (op *copyOp) destination() (string, bool, error) {
	resolved, err := resolvePath(op.image, op.dest)
	if err != nil {
		return "", false, fmt.Errorf("resolving destination %s: %w", op.dest, err)
	}
	isDir := strings.HasSuffix(op.dest, "/") || strings.HasSuffix(op.dest, "/.")
	if e, err := op.image.lstat(resolved); err == nil && e.info.IsDir() {
		isDir = true
	}
	return resolved, isDir, nil
}

// plan lists what op writes, resolving wildcards and symlinked sources,
// and enforces Docker's rules on the destination.
func (op *copyOp) plan(ctx context.Context) ([]planned, error) {
	dest, destIsDir, err := op.destination()
	if err != nil {
		return nil, err
	}
	var srcs []string
	var out []planned
	for _, s := range op.sources {
		if op.add && isURL(s) {
			p, err := op.planURL(ctx, s, dest, destIsDir)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			continue
		}
		matched, err := op.match(s)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, matched...)
	}
	if n := len(srcs) + len(out) + len(op.heredocs); n > 1 && !destIsDir {
		return nil, fmt.Errorf("when using %s with more than one source file, the destination must be a directory and end with a /", op.name)
	}
	for _, s := range srcs {
		p, err := op.planSource(s, dest, destIsDir)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	for _, h := range op.heredocs {
		dst := dest
		if destIsDir {
			dst = path.Join(dest, h.name)
		}
		out = append(out, planned{Dst: dst, Data: &h.data})
	}
	return out, nil
}

// describeFiles fills each planned source's Files, in plan order, so hard
// links across sources point at the first path written.
func (op *copyOp) describeFiles(plan []planned) error {
	d := &describer{from: op.from, context: op.context}
	for i := range plan {
		p := &plan[i]
		if p.Data != nil || p.URLTime != nil || p.Files != nil {
			continue
		}
		if p.Dir {
			files, err := d.walk(p.srcPath, p.Dst, nil)
			if err != nil {
				return err
			}
			p.Files = files
			continue
		}
		f, err := d.describe(p.src, p.Dst)
		if err == errSkip {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", displaySrc(p.srcPath), err)
		}
		p.Files = []srcFile{f}
	}
	return nil
}

// match expands one source (wildcards per path component, as BuildKit)
// into existing paths of the source tree.
func (op *copyOp) match(src string) ([]string, error) {
	p := path.Clean("/" + src)
	if op.context {
		var err error
		if p, err = checkInside(src); err != nil {
			return nil, err
		}
	}
	if !hasMeta(p) {
		return []string{p}, nil
	}
	// A wildcard that matches nothing copies nothing, as BuildKit's
	// converter asks (AllowEmptyWildcard); a missing plain path still fails.
	return glob(op.from, "/", splitPath(p))
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// glob matches the pattern components against the tree below dir. Each
// directory is resolved in the tree first, so a symlinked directory is
// followed as a chroot would follow it (and, in the context, refused when
// it leads outside) rather than by the host.
func glob(t srcTree, dir string, comps []string) ([]string, error) {
	if len(comps) == 0 {
		return []string{dir}, nil
	}
	dir, err := resolvePath(t, dir)
	if err != nil {
		return nil, err
	}
	if !hasMeta(comps[0]) {
		next := path.Join(dir, comps[0])
		if _, err := t.lstat(next); err != nil {
			return nil, nil
		}
		return glob(t, next, comps[1:])
	}
	names, err := t.readDir(dir)
	if err != nil {
		return nil, nil
	}
	var out []string
	for _, n := range names {
		ok, err := path.Match(comps[0], n)
		if err != nil {
			return nil, fmt.Errorf("bad pattern %s: %w", comps[0], err)
		}
		if !ok {
			continue
		}
		sub, err := glob(t, path.Join(dir, n), comps[1:])
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// planSource resolves one matched source, following a symlink at the top
// as Docker does, and picks where it lands.
func (op *copyOp) planSource(src, dest string, destIsDir bool) (planned, error) {
	resolved, err := resolvePath(op.from, src)
	if err != nil {
		return planned{}, fmt.Errorf("%s: %w", displaySrc(src), err)
	}
	e, err := op.from.lstat(resolved)
	if errors.Is(err, fs.ErrNotExist) {
		where := "the build context"
		if !op.context {
			where = "the source image"
		}
		return planned{}, fmt.Errorf("%s: no such file or directory in %s", displaySrc(src), where)
	}
	if err != nil {
		return planned{}, fmt.Errorf("%s: %w", displaySrc(src), err)
	}
	p := planned{src: e, srcPath: resolved, Dst: dest}
	switch {
	case e.info.IsDir():
		p.Dir = true
	case op.add && op.context && e.info.Mode().IsRegular() && op.isArchive(e):
		p.Extract = true
	case destIsDir:
		p.Dst = path.Join(dest, path.Base(src))
	}
	return p, nil
}

func displaySrc(src string) string { return strings.TrimPrefix(src, "/") }

// isArchive reports whether the context file e is an archive ADD unpacks.
func (op *copyOp) isArchive(e entry) bool {
	f, err := op.from.open(e)
	if err != nil {
		return false
	}
	defer f.Close()
	return isArchive(f)
}

// planURL downloads an ADD URL; it lands as the URL's file name in a
// destination directory. The download is a file of this build's, so it is
// described (and hashed) at once.
func (op *copyOp) planURL(ctx context.Context, rawURL, dest string, destIsDir bool) (planned, error) {
	file, mtime, err := op.dl.fetch(ctx, rawURL, op.checksum)
	if err != nil {
		return planned{}, err
	}
	fi, err := os.Lstat(file)
	if err != nil {
		return planned{}, err
	}
	if destIsDir {
		dest = path.Join(dest, urlBase(rawURL))
	}
	sum, err := fileSHA256(file)
	if err != nil {
		return planned{}, err
	}
	e := entry{host: file, info: fi}
	f := srcFile{Dst: dest, Kind: kindReg, Mode: 0o600, Size: fi.Size(), Sum: sum, Mtime: mtime, entry: e}
	return planned{src: e, srcPath: rawURL, Dst: dest, URLTime: &mtime, Files: []srcFile{f}}, nil
}
