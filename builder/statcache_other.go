//go:build !linux

package builder

import "io/fs"

// statOf has no portable ctime; the cache stays empty elsewhere.
func statOf(fs.FileInfo) (statEntry, bool) { return statEntry{}, false }
