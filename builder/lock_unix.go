//go:build unix

package builder

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockExclusive flocks the existing file path without waiting. It fails
// when the file was replaced or removed meanwhile, so a lock always guards
// the file that is at path.
func lockExclusive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	held, err1 := f.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, errors.New("lock file replaced")
	}
	return f, nil
}
