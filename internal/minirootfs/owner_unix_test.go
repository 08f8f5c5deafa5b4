//go:build unix

package minirootfs

import (
	"fmt"
	"io/fs"
	"syscall"
)

func ownerOf(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "?"
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}
