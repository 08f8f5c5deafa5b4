package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// contextFS is the build context directory as COPY sees it: files that
// .dockerignore excludes do not exist, and nothing outside the directory
// can be reached, not even through a symlink. Every access goes through a
// descriptor of the directory with the kernel refusing symlinks and ".."
// on the way (see at), so a context changed while the build reads it (a
// directory swapped for a symlink to /root) never leads a root build to
// files outside it.
type contextFS struct {
	dir    string
	root   *os.File // the directory, held open for the build
	ignore *patternmatcher.PatternMatcher
	sums   *statCache // nil: hash every file every time
}

// IgnoreFile is an ignore file that replaces the context's .dockerignore:
// <Dockerfile name>.dockerignore next to the Dockerfile, which docker
// reads first.
type IgnoreFile struct {
	Name string // for messages
	Data []byte
}

// openContext checks the context directory and reads its .dockerignore.
// The directory is made absolute: the sandbox resolves a relative bind
// source against its own working directory, not the caller's.
func openContext(dir string) (*contextFS, error) { return openContextWith(dir, nil) }

// openContextWith is openContext with ignore, when not nil, in place of
// the context's .dockerignore.
func openContextWith(dir string, ignore *IgnoreFile) (*contextFS, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	root, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|oPath, 0)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	c := &contextFS{dir: dir, root: root}
	if ignore == nil {
		data, err := ReadContextFile(dir, ".dockerignore")
		if errors.Is(err, fs.ErrNotExist) {
			return c, nil
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("reading .dockerignore: %w", err)
		}
		ignore = &IgnoreFile{Name: ".dockerignore", Data: data}
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(ignore.Data))
	if err == nil {
		c.ignore, err = patternmatcher.New(patterns)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("%s: %w", ignore.Name, err)
	}
	return c, nil
}

func (c *contextFS) close() { c.root.Close() }

// ignored reports whether .dockerignore excludes the context path p. An
// excluded directory stays visible when a "!" pattern re-includes something
// below it, as BuildKit's walker keeps it.
func (c *contextFS) ignored(p string, isDir bool) bool {
	rel := strings.TrimPrefix(p, "/")
	if c.ignore == nil || rel == "" {
		return false
	}
	m, err := c.ignore.MatchesOrParentMatches(rel)
	if err != nil || !m {
		return false
	}
	if !isDir || !c.ignore.Exclusions() {
		return true
	}
	return !c.hasVisible(p)
}

// hasVisible reports whether some file below dir is not ignored.
func (c *contextFS) hasVisible(dir string) bool {
	fd, err := c.at(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return false
	}
	for _, de := range des {
		if !c.ignored(path.Join(dir, de.Name()), de.IsDir()) {
			return true
		}
	}
	return false
}

func (c *contextFS) lstat(p string) (entry, error) {
	fd, err := c.at(p, oPath|unix.O_NOFOLLOW)
	if err != nil {
		return entry{}, err
	}
	defer unix.Close(fd)
	fi, err := fstatInfo(fd, path.Base(p))
	if err != nil {
		return entry{}, err
	}
	if c.ignored(p, fi.IsDir()) {
		return entry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return entry{host: filepath.Join(c.dir, p), info: fi, rel: p}, nil
}

func (c *contextFS) readDir(p string) ([]string, error) {
	fd, err := c.at(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(c.dir, p))
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	names := make([]string, 0, len(des))
	for _, de := range des {
		if !c.ignored(path.Join(p, de.Name()), de.IsDir()) {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// open opens the regular file e for reading.
func (c *contextFS) open(e entry) (*os.File, error) { return c.openPath(e.rel) }

// openPath opens the regular file at the clean absolute context path p for
// reading.
func (c *contextFS) openPath(p string) (*os.File, error) {
	// O_NONBLOCK: a fifo swapped in for a file must not hang the build.
	fd, err := c.at(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(c.dir, p))
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("not a regular file")}
	}
	return f, nil
}

// checkInside refuses a source path that leaves the context, before any
// symlink is followed: ../x is an error, not the context's x.
func checkInside(src string) (string, error) {
	if escapes(src) {
		return "", fmt.Errorf("%s: path is outside the build context", src)
	}
	return path.Clean("/" + src), nil
}

// readlink reads a link in the context and refuses a target that leaves
// it, naming the link: inside the context a symlink is not clamped the way
// it is inside an image, because following it would read host files.
func (c *contextFS) readlink(e entry) (string, error) {
	target, err := c.linkTarget(e)
	if err != nil {
		return "", err
	}
	rel := strings.TrimPrefix(e.rel, "/")
	if path.IsAbs(target) || escapes(path.Join(path.Dir(rel), target)) {
		return "", fmt.Errorf("symlink %s points outside the build context (%s)", rel, target)
	}
	return path.Join("/", path.Dir(rel), target), nil
}

// linkTarget is the target of the symlink e, as written.
func (c *contextFS) linkTarget(e entry) (string, error) {
	fd, err := c.at(e.rel, oPath|unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return readlinkFD(fd)
}

// escapes reports whether the relative path p climbs above its root.
func escapes(p string) bool {
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}
