//go:build unix

package builder

import (
	"io/fs"
	"syscall"
)

// ownerOf is the numeric owner of a file.
func ownerOf(fi fs.FileInfo) owner {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return owner{int(st.Uid), int(st.Gid)}
	}
	return owner{}
}
