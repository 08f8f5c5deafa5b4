//go:build unix

package minirootfs

import (
	"time"

	"golang.org/x/sys/unix"
)

// lchtimes sets the mtime of a symlink itself: os.Chtimes would follow it.
func lchtimes(p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
