package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/overlayfs"
)

// entryState is what the copy fallback remembers of each entry of the copied rootfs, to
// tell afterwards what the step changed.
type entryState struct {
	ino      uint64
	btime    unix.StatxTimestamp // birth time: tells a replaced entry from one whose inode number was reused
	ctime    unix.StatxTimestamp
	mtime    unix.StatxTimestamp
	mode     uint16
	uid, gid uint32
	size     uint64
}

// tree is the recorded state of a rootfs: entries by relative path, and each directory's
// children names.
type tree struct {
	entries  map[string]entryState
	children map[string][]string
}

// materialize copies the lowers (top-most first, as in Spec.Lowers) into dst the way
// overlayfs would merge them, bottom to top: a whiteout deletes, an opaque directory
// replaces, anything else overrides. It returns the state of the result.
func materialize(lowers []string, dst string) (*tree, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("creating rootfs copy: %w", err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return nil, fmt.Errorf("creating rootfs copy: %w", err)
	}
	for i := len(lowers) - 1; i >= 0; i-- {
		if err := applyLower(lowers[i], dst); err != nil {
			return nil, fmt.Errorf("copying lower %s: %w", lowers[i], err)
		}
	}
	return recordTree(dst)
}

// applyLower merges one lower directory onto dst. Directories and whiteouts are applied in
// walk order; files go to a copier, and hard links wait for the copies they point to.
func applyLower(src, dst string) error {
	c := newCopier(copyWorkers)
	links := map[uint64]string{} // hard links within this lower: inode -> first copy
	var pending [][2]string      // (first copy, link) pairs
	var dirs []string
	walkErr := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		target := filepath.Join(dst, rel)
		switch {
		case overlayfs.IsWhiteoutStat(&st):
			return os.RemoveAll(target)
		case isDir(&st):
			dirs = append(dirs, rel)
			return mergeDir(p, target, &st)
		case st.Nlink > 1 && links[st.Ino] != "":
			pending = append(pending, [2]string{links[st.Ino], target})
			return nil
		}
		if st.Nlink > 1 {
			links[st.Ino] = target
		}
		return c.add(copyJob{src: p, dst: target, st: st})
	})
	if err := errors.Join(walkErr, c.wait()); err != nil {
		return err
	}
	for _, l := range pending {
		if err := os.RemoveAll(l[1]); err != nil {
			return err
		}
		if err := os.Link(l[0], l[1]); err != nil {
			return err
		}
	}
	return copyDirTimes(src, dst, dirs)
}

// copyDirTimes sets the times of dirs (relative, in walk order) from src on dst, deepest
// first, last of all: adding entries changed them.
func copyDirTimes(src, dst string, dirs []string) error {
	for i := len(dirs) - 1; i >= 0; i-- {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, dirs[i]), &st); err != nil {
			return err
		}
		if err := setTimes(filepath.Join(dst, dirs[i]), st.Atim, st.Mtim); err != nil {
			return err
		}
	}
	return nil
}

func mergeDir(src, dst string, st *unix.Stat_t) error {
	var cur unix.Stat_t
	exists := unix.Lstat(dst, &cur) == nil
	if exists && (!isDir(&cur) || overlayfs.IsOpaque(src)) {
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
	}
	return copyMeta(src, dst, st)
}

// copyWorkers is how many files the copier creates at once. Where each create waits for the
// disk (about 0.3 ms on the 2-core dev VM's ext4), four in flight copied 10,000 files in 80%
// of the time one took.
const copyWorkers = 4

type copyJob struct {
	src, dst string
	st       unix.Stat_t
}

// copier replaces paths with copies of lower files on a few goroutines. Jobs never share a
// path, and their parent directories exist before they are queued.
type copier struct {
	jobs chan copyJob
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func newCopier(workers int) *copier {
	c := &copier{jobs: make(chan copyJob, workers*4)}
	c.wg.Add(workers)
	for range workers {
		go c.work()
	}
	return c
}

func (c *copier) work() {
	defer c.wg.Done()
	for j := range c.jobs {
		if c.failed() {
			continue
		}
		err := os.RemoveAll(j.dst)
		if err == nil {
			err = copyNode(j.src, j.dst, &j.st)
		}
		if err != nil {
			c.mu.Lock()
			c.err = errors.Join(c.err, err)
			c.mu.Unlock()
		}
	}
}

func (c *copier) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// add queues a job; it returns an earlier job's error to stop the walk early.
func (c *copier) add(j copyJob) error {
	if c.failed() {
		return errors.New("copying stopped after an error")
	}
	c.jobs <- j
	return nil
}

func (c *copier) wait() error {
	close(c.jobs)
	c.wg.Wait()
	return c.err
}

// recordTree walks root and remembers every entry's identity and metadata.
func recordTree(root string) (*tree, error) {
	t := &tree{entries: map[string]entryState{}, children: map[string][]string{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		st, err := statx(p)
		if err != nil {
			return err
		}
		t.entries[rel] = stateOf(&st)
		parent := parentOf(rel)
		t.children[parent] = append(t.children[parent], path.Base(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording rootfs copy: %w", err)
	}
	return t, nil
}

func statx(p string) (unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st)
	if err != nil {
		return st, &os.PathError{Op: "statx", Path: p, Err: err}
	}
	return st, nil
}

func stateOf(st *unix.Statx_t) entryState {
	return entryState{
		ino: st.Ino, btime: st.Btime, ctime: st.Ctime, mtime: st.Mtime,
		mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size,
	}
}
