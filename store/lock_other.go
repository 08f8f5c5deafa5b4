//go:build !unix

package store

import (
	"errors"
	"os"
)

type fileLock struct{}

func lockFile(path string, exclusive, wait bool) (*fileLock, error) {
	return nil, errors.New("the store needs file locks, which need a Unix system")
}

func (l *fileLock) unlock() error { return nil }

func (l *fileLock) guards(path string) bool { return false }

func ownerUID(fi os.FileInfo) (int, bool) { return 0, false }

func lockDirFile(path string, exclusive, wait bool) (*fileLock, error) {
	return lockFile(path, exclusive, wait)
}
