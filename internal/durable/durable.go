// Package durable makes files and trees survive a crash before they become
// visible: the store's blobs, snapshots and entries appear by rename(2)
// only once their bytes are on disk.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// SyncDir makes a rename in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// Commit makes the finished temporary file tmp visible as dst: fsync,
// close, rename, fsync of the directory.
func Commit(tmp *os.File, dst string) error {
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("moving into place: %w", err)
	}
	return SyncDir(filepath.Dir(dst))
}
