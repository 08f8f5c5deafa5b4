package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// workDir is a build's temporary directory under <root>/build-tmp, held
// by a lock on a file beside it so that a later build can tell the
// directory of a killed build (lock free) from a running one's.
type workDir struct {
	path string
	lock *os.File
}

// newWorkDir takes the lock first and creates the directory second, so a
// directory without a lock file is always garbage.
func newWorkDir(root string) (*workDir, error) {
	base := filepath.Join(root, "build-tmp")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	cleanDead(base)
	for range 10 {
		f, err := os.CreateTemp(base, "build-*.lock")
		if err != nil {
			return nil, fmt.Errorf("creating temporary directory: %w", err)
		}
		name := f.Name()
		f.Close()
		lock, err := lockExclusive(name)
		if err != nil {
			continue // a concurrent cleanDead took it; try another name
		}
		dir := strings.TrimSuffix(name, ".lock")
		if err := os.Mkdir(dir, 0o700); err != nil {
			lock.Close()
			return nil, fmt.Errorf("creating temporary directory: %w", err)
		}
		return &workDir{path: dir, lock: lock}, nil
	}
	return nil, fmt.Errorf("creating temporary directory in %s: lock contention", base)
}

func (w *workDir) remove() {
	os.RemoveAll(w.path)
	os.Remove(w.path + ".lock")
	w.lock.Close()
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
		if lock, err := lockExclusive(dir + ".lock"); err == nil {
			os.RemoveAll(dir)
			os.Remove(dir + ".lock")
			lock.Close()
		}
	}
}
