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
// extract, or literal content.
type planned struct {
	src     entry
	srcPath string // in the source tree
	dst     string // absolute path in the image, destination resolved
	extract bool
	data    *string    // heredoc content
	mtime   *time.Time // a downloaded URL's Last-Modified time
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
		out = append(out, planned{dst: dst, data: &h.data})
	}
	return out, nil
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
	matches, err := glob(op.from, "/", splitPath(p))
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("%s: no source files were specified: %w", src, fs.ErrNotExist)
	}
	return matches, nil
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
	p := planned{src: e, srcPath: resolved, dst: dest}
	switch {
	case e.info.IsDir():
	case op.add && op.context && e.info.Mode().IsRegular() && isArchive(e.host):
		p.extract = true
	case destIsDir:
		p.dst = path.Join(dest, path.Base(src))
	}
	return p, nil
}

func displaySrc(src string) string { return strings.TrimPrefix(src, "/") }

// planURL downloads an ADD URL; it lands as the URL's file name in a
// destination directory.
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
	return planned{src: entry{host: file, info: fi}, srcPath: rawURL, dst: dest, mtime: &mtime}, nil
}
