package builder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// contextFS is the build context directory as COPY sees it: files that
// .dockerignore excludes do not exist, and nothing outside the directory
// can be reached, not even through a symlink.
type contextFS struct {
	dir    string
	ignore *patternmatcher.PatternMatcher
	sums   *statCache // nil: hash every file every time
}

// openContext checks the context directory and reads its .dockerignore.
// The directory is made absolute: the sandbox resolves a relative bind
// source against its own working directory, not the caller's.
func openContext(dir string) (*contextFS, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", dir)
	}
	c := &contextFS{dir: dir}
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	if c.ignore, err = patternmatcher.New(patterns); err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return c, nil
}

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
	des, err := os.ReadDir(filepath.Join(c.dir, dir))
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
	host := filepath.Join(c.dir, p)
	fi, err := os.Lstat(host)
	if err != nil {
		return entry{}, err
	}
	if c.ignored(p, fi.IsDir()) {
		return entry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return entry{host: host, info: fi}, nil
}

func (c *contextFS) readDir(p string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(c.dir, p))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(des))
	for _, de := range des {
		if !c.ignored(path.Join(p, de.Name()), de.IsDir()) {
			names = append(names, de.Name())
		}
	}
	return names, nil
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
	target, err := os.Readlink(e.host)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(c.dir, e.host)
	if err != nil {
		return "", err
	}
	rel = filepath.ToSlash(rel)
	if path.IsAbs(target) || escapes(path.Join(path.Dir(rel), target)) {
		return "", fmt.Errorf("symlink %s points outside the build context (%s)", rel, target)
	}
	return path.Join("/", path.Dir(rel), target), nil
}

// escapes reports whether the relative path p climbs above its root.
func escapes(p string) bool {
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

// linkTree recreates the visible part of the context directory p at dst:
// directories and symlinks anew, files as hard links (copies across
// filesystems), so ignored files are absent from a RUN bind mount.
func (c *contextFS) linkTree(p, dst string) error {
	names, err := c.readDir(p)
	if err != nil {
		return err
	}
	for _, n := range names {
		e, err := c.lstat(path.Join(p, n))
		if err != nil {
			return err
		}
		if err := linkEntry(e, filepath.Join(dst, n)); err != nil {
			return err
		}
		if e.info.IsDir() {
			if err := c.linkTree(path.Join(p, n), filepath.Join(dst, n)); err != nil {
				return err
			}
			if err := os.Chmod(filepath.Join(dst, n), e.info.Mode().Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}

func linkEntry(e entry, dst string) error {
	switch mt := e.info.Mode(); {
	case mt.IsDir():
		return os.Mkdir(dst, 0o700)
	case mt&fs.ModeSymlink != 0:
		target, err := os.Readlink(e.host)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case mt.IsRegular():
		if os.Link(e.host, dst) == nil {
			return nil
		}
		return copyRegular(e.host, dst, mt.Perm())
	}
	return nil
}

func copyRegular(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	// The RUN that sees the copy must not see the caller's umask.
	if err := out.Chmod(perm); err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
