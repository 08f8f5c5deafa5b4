//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileLock is an flock(2) lock held on an open file. Locks belong to the
// open file, so they vanish with the process that held them: a crashed
// build never leaves the store locked.
type fileLock struct{ f *os.File }

func lockFile(path string, exclusive, wait bool) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock: %w", err)
	}
	return lockOpen(f, path, exclusive, wait)
}

// lockDirFile flocks the directory path itself (a cache mount).
func lockDirFile(path string, exclusive, wait bool) (*fileLock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening lock: %w", err)
	}
	return lockOpen(f, path, exclusive, wait)
}

func lockOpen(f *os.File, path string, exclusive, wait bool) (*fileLock, error) {
	var err error
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) unlock() error { return l.f.Close() }

// guards reports whether path still names the locked file.
func (l *fileLock) guards(path string) bool {
	a, err := l.f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// ownerUID is the owner of a file as lstat gave it.
func ownerUID(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
