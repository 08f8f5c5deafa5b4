//go:build !linux

package durable

import "os"

// SyncFS flushes the filesystem holding dir; without syncfs(2), everything.
func SyncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
