package durable

import (
	"os"

	"golang.org/x/sys/unix"
)

// SyncFS flushes the filesystem holding dir: one syncfs(2) instead of an
// fsync per file of a tree that is about to become visible.
func SyncFS(dir string) error {
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
