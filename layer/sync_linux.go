package layer

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the filesystem holding dir: one syncfs(2) instead of an
// fsync per extracted file.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}
