// Package filecopy copies a regular file's content, the one way strata does it: the
// sandbox's copy fallback (which gives the copy its owner, mode, xattrs and times itself)
// and the end-to-end tests' contexts use it.
package filecopy

import (
	"io"
	"os"
)

// Content creates dst (which must not exist) with permissions perm (before the umask) and
// copies src's content into it. Between files io.Copy uses copy_file_range, so reflinks and
// in-kernel copies apply; src is opened without updating its atime where that is allowed
// (see OpenNoAtime).
func Content(src, dst string, perm os.FileMode) error {
	in, err := OpenNoAtime(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
