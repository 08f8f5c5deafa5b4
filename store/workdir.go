package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WorkDir is a build's temporary directory under build-tmp/, held by a lock
// on a file beside it so that a later Open can tell the directory of a
// killed build (lock free) from a running one's. Builds keep the trees they
// write there (COPY outputs, RUN upper dirs); a layer written from one can
// become its snapshot on the same filesystem.
type WorkDir struct {
	path string
	lock *fileLock
}

// Path is the directory.
func (w *WorkDir) Path() string { return w.path }

// NewWorkDir creates a build's temporary directory. It takes the lock first
// and creates the directory second, so a directory without a lock file is
// always garbage.
func (s *Store) NewWorkDir() (*WorkDir, error) {
	base := s.path("build-tmp")
	cleanDead(base)
	for range 10 {
		f, err := os.CreateTemp(base, "build-*.lock")
		if err != nil {
			return nil, fmt.Errorf("creating temporary directory: %w", err)
		}
		name := f.Name()
		f.Close()
		lock, err := lockFile(name, true, false)
		if err != nil || !lock.guards(name) {
			if lock != nil {
				lock.unlock()
			}
			continue // a concurrent cleanDead took it; try another name
		}
		dir := strings.TrimSuffix(name, ".lock")
		if err := os.Mkdir(dir, 0o700); err != nil {
			lock.unlock()
			return nil, fmt.Errorf("creating temporary directory: %w", err)
		}
		return &WorkDir{path: dir, lock: lock}, nil
	}
	return nil, fmt.Errorf("creating temporary directory in %s: lock contention", base)
}

// Remove removes the directory and its lock.
func (w *WorkDir) Remove() {
	os.RemoveAll(w.path)
	os.Remove(w.path + ".lock")
	w.lock.unlock()
}

// cleanDead removes what builds that died left: directories whose lock is
// free or gone, and free lock files. Errors only leave garbage behind.
func cleanDead(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".lock")
		if !strings.HasPrefix(name, "build-") {
			continue
		}
		dir := filepath.Join(base, name)
		if e.Name() == name {
			if _, err := os.Stat(dir + ".lock"); os.IsNotExist(err) {
				os.RemoveAll(dir)
			}
			continue
		}
		if _, err := os.Stat(dir + ".lock"); err != nil {
			continue
		}
		if lock, err := lockFile(dir+".lock", true, false); err == nil {
			if lock.guards(dir + ".lock") {
				os.RemoveAll(dir)
				os.Remove(dir + ".lock")
			}
			lock.unlock()
		}
	}
}
