package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	chmod "github.com/tonistiigi/dchapes-mode"

	"github.com/strata-build/strata/internal/owners"
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
	context  bool // from is the build context: files become 0:0
	add      bool // ADD: local archives are extracted
	// chownSpec is --chown as written (expanded); the key holds it, since
	// the parent key fixes the /etc/passwd it resolves in. chown is its
	// ids, resolved when the step runs: nil means 0:0 from the context,
	// kept from an image.
	chownSpec string
	chown     *owner
	mode      *fs.FileMode
	// chmod is a symbolic --chmod as written (expanded), keyed; modes is
	// it parsed, applied to each file's own mode (modeFor).
	chmod string
	modes *chmod.Set
	// parents is COPY --parents; exclude is --exclude's patterns as
	// written and excluded them compiled (patternmatcher, as BuildKit):
	// both applied to the files below each directory source
	// (selectFiles).
	parents  bool
	exclude  []string
	excluded *patternmatcher.PatternMatcher
	// unpack is ADD --unpack (nil: not given): false keeps a local
	// archive packed, true unpacks a downloaded one (unpacks).
	unpack *bool
	// image is the tree the files land in, read only when the step runs
	// (place): the key needs none of it, so a cached step never waits for
	// its base's layers.
	image    mergedFS
	checksum string // ADD --checksum
	// keepGitDir is ADD --keep-git-dir (nil: not given).
	keepGitDir *bool
	dl         downloader
	// owners reads the image owners of files from a stage or an image (owners.Host, the
	// default, from disk).
	owners owners.Policy
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
	// directory source's contents or an archive's entries go into. While
	// keying it is the path as if the destination were a directory, not
	// resolved in the image (see place); the writer gets it resolved.
	Dst string `json:"dst"`
	// Name is the file name a single source lands under in a destination
	// directory ("" for a directory source or an archive, whose contents
	// land in the destination itself).
	Name string `json:"name,omitempty"`
	// Dir: a directory source, whose contents (Files) land in Dst.
	Dir bool `json:"dir,omitempty"`
	// Extract: ADD of a local archive (Files[0]), unpacked into Dst.
	Extract bool `json:"extract,omitempty"`
	// Data is a heredoc's content.
	Data *string `json:"data,omitempty"`
	// URLTime is a download's Last-Modified time, which the file gets.
	URLTime *time.Time `json:"urlTime,omitempty"`
	// Git: a git repository, cloned when the step runs; its contents land
	// in Dst (git.go).
	Git *gitSource `json:"git,omitempty"`
	// Files are the source files in write order; for a context source
	// they are described when planning, for a stage's or image's when the
	// step runs (its key covers them).
	Files []srcFile `json:"files,omitempty"`

	src     entry  // the source itself
	srcPath string // in the source tree, for messages
	// include is COPY --parents' pattern, relative to the directory
	// source srcPath: only what it matches lands, below its parents
	// (selectFiles); "" copies the whole directory.
	include string
	// required is the include pattern when it has no wildcard: it must
	// match something, as in BuildKit.
	required bool
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

// plan lists what op writes, resolving wildcards and symlinked sources of
// the context and downloading URLs. It reads nothing of the image: each
// planned Dst is where it would land if the destination, unresolved, were
// a directory (place settles both once the step runs), so the key is known
// before the image's layers are. The parent key fixes the image, so the
// same plan always lands the same way. A stage's or image's sources are
// matched in place too: the source's key covers them.
func (op *copyOp) plan(ctx context.Context) ([]planned, error) {
	dest := keyDest(op.dest)
	var out []planned
	for _, s := range op.sources {
		ref, isGit, err := parseGitSource(s)
		if err != nil {
			return nil, err
		}
		if op.add && isGit {
			p, err := op.planGit(ctx, ref, dest)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			continue
		}
		if op.add && isURL(s) {
			p, err := op.planURL(ctx, s, dest)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			continue
		}
		if !op.context {
			continue
		}
		ps, err := op.planLocal(s, dest)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	for _, h := range op.heredocs {
		out = append(out, planned{Dst: path.Join(dest, h.name), Name: h.name, Data: &h.data})
	}
	return out, nil
}

// keyDest is the destination as the plan names it before place: clean,
// absolute, no trailing slash.
func keyDest(dest string) string { return path.Clean("/" + dest) }

// place lands the plan in the image once the step runs: it resolves the
// destination as a chroot would, matches a stage's or image's sources,
// enforces Docker's rules on the destination, and rewrites every Dst (and
// hard link) from the plan's names to the resolved ones.
func (op *copyOp) place(plan []planned) ([]planned, error) {
	dest, destIsDir, err := op.destination()
	if err != nil {
		return nil, err
	}
	if !op.context {
		var srcs []planned
		for _, s := range op.sources {
			if op.add && isURL(s) {
				continue
			}
			ps, err := op.planLocal(s, keyDest(op.dest))
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, ps...)
		}
		// The sources come before the heredocs and URLs, as written.
		plan = append(srcs, plan...)
	}
	if len(plan) > 1 && !destIsDir {
		return nil, fmt.Errorf("when using %s with more than one source file, the destination must be a directory and end with a /", op.name)
	}
	from := keyDest(op.dest)
	renamed := map[string]string{}
	out := make([]planned, len(plan))
	for i, p := range plan {
		// Where the plan's Dst prefix lands.
		virt, real := from, dest
		if p.Name != "" {
			virt = path.Join(from, p.Name)
			if destIsDir {
				real = path.Join(dest, p.Name)
			}
		}
		p.Dst = rebase(p.Dst, virt, real)
		p.Files = slices.Clone(p.Files)
		for j := range p.Files {
			f := &p.Files[j]
			nd := rebase(f.Dst, virt, real)
			renamed[f.Dst] = nd
			f.Dst = nd
			if f.LinkTo != "" {
				f.LinkTo = renamed[f.LinkTo]
			}
		}
		out[i] = p
	}
	return out, nil
}

// rebase moves p from below virt to below real.
func rebase(p, virt, real string) string {
	if p == virt {
		return real
	}
	return path.Join(real, strings.TrimPrefix(p, virt+"/"))
}

// describeFiles fills each planned source's Files, in plan order, so hard
// links across sources point at the first path written.
func (op *copyOp) describeFiles(plan []planned) error { return op.describeStaged(plan, nil) }

// describeStaged is describeFiles staging the context files' content in
// stg as it hashes them (nil: hashing only).
func (op *copyOp) describeStaged(plan []planned, stg *stager) error {
	d := &describer{from: op.from, context: op.context, owners: op.owners, stage: stg}
	for i := range plan {
		p := &plan[i]
		if p.Data != nil || p.URLTime != nil || p.Files != nil || p.Git != nil {
			continue
		}
		if p.Dir {
			files, err := op.dirFiles(d, p)
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
		// An archive ADD unpacks is read as a stream, not copied.
		f.noStage = p.Extract
		p.Files = []srcFile{f}
	}
	var lists [][]srcFile
	for _, p := range plan {
		if p.Data == nil && p.URLTime == nil {
			lists = append(lists, p.Files)
		}
	}
	return d.fill(fileRefs(lists...))
}

// planLocal plans one source of the context, a stage or an image: the
// paths it matches, each landing below dest. With --parents a source
// names a directory (the context's root, or what precedes a "/./" pivot)
// and a pattern below it: the directory's contents that the pattern
// matches land with their parents, as BuildKit copies them (an include
// pattern on the directory's contents).
func (op *copyOp) planLocal(s, dest string) ([]planned, error) {
	root, pattern := s, ""
	if op.parents {
		var ok bool
		if root, pattern, ok = strings.Cut(s, "/./"); !ok {
			root, pattern = "/", s
		}
		// As BuildKit normalises it; "dir/./" leaves an empty pattern,
		// which matches nothing there either.
		pattern = strings.TrimPrefix(path.Clean("/"+pattern), "/")
	}
	matched, err := op.match(root)
	if err != nil {
		return nil, err
	}
	var out []planned
	for _, m := range matched {
		p, err := op.planSource(m, dest)
		if err != nil {
			return nil, err
		}
		if op.parents && p.Dir {
			p.include, p.required = pattern, !hasMeta(root) && !hasMeta(pattern)
		}
		out = append(out, p)
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
// as Docker does, and names where it lands below the destination dest.
func (op *copyOp) planSource(src, dest string) (planned, error) {
	resolved, err := resolvePath(op.from, src)
	if err != nil {
		return planned{}, fmt.Errorf("%s: %w", displaySrc(src), err)
	}
	e, err := op.from.lstat(resolved)
	if errors.Is(err, fs.ErrNotExist) {
		return planned{}, fmt.Errorf("%s: no such file or directory in %s", displaySrc(src), op.where())
	}
	if err != nil {
		return planned{}, fmt.Errorf("%s: %w", displaySrc(src), err)
	}
	p := planned{src: e, srcPath: resolved, Dst: dest}
	switch {
	case e.info.IsDir():
		p.Dir = true
	case op.unpacks(false) && op.context && e.info.Mode().IsRegular() && op.isArchive(e):
		p.Extract = true
	default:
		p.Name = path.Base(src)
		p.Dst = path.Join(dest, p.Name)
	}
	return p, nil
}

// where names the source tree in messages.
func (op *copyOp) where() string {
	if op.context {
		return "the build context"
	}
	return "the source image"
}

func displaySrc(src string) string { return strings.TrimPrefix(src, "/") }

// unpacks reports whether ADD unpacks an archive, a download when url:
// a local one unless --unpack=false, a download only with --unpack=true,
// as BuildKit decides.
func (op *copyOp) unpacks(url bool) bool {
	if !op.add {
		return false
	}
	if op.unpack != nil {
		return *op.unpack
	}
	return !url
}

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
func (op *copyOp) planURL(ctx context.Context, rawURL, dest string) (planned, error) {
	file, mtime, err := op.dl.fetch(ctx, rawURL, op.checksum)
	if err != nil {
		return planned{}, err
	}
	fi, err := os.Lstat(file)
	if err != nil {
		return planned{}, err
	}
	name := urlBase(rawURL)
	dest = path.Join(dest, name)
	sum, err := fileSHA256(file)
	if err != nil {
		return planned{}, err
	}
	op.dl.sources.add(Source{Kind: "http", Ref: redactURL(rawURL), Digest: "sha256:" + sum})
	e := entry{host: file, info: fi}
	f := srcFile{Dst: dest, Kind: kindReg, Mode: 0o600, Size: fi.Size(), Sum: sum, Mtime: mtime, entry: e}
	if op.unpacks(true) && downloadIsArchive(file) {
		// Unpacked into the destination directory, as a local archive.
		return planned{src: e, srcPath: rawURL, Dst: path.Dir(dest), Extract: true, URLTime: &mtime, Files: []srcFile{f}}, nil
	}
	return planned{src: e, srcPath: rawURL, Dst: dest, Name: name, URLTime: &mtime, Files: []srcFile{f}}, nil
}

// downloadIsArchive reports whether the downloaded file is an archive ADD
// --unpack=true unpacks.
func downloadIsArchive(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	return isArchive(f)
}

// modeFor is the mode a file of mode m (a directory when dir) lands with:
// an octal --chmod replaces it, a symbolic one changes it as BuildKit's
// copy does (chmod(1) rules with umask 0; X where m has an execute bit or
// is a directory); without --chmod it is kept.
func (op *copyOp) modeFor(m fs.FileMode, dir bool) fs.FileMode {
	switch {
	case op.mode != nil:
		return *op.mode
	case op.modes != nil:
		if dir {
			m |= fs.ModeDir
		}
		return op.modes.Apply(m) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	}
	return m
}
