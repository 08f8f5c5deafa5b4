//go:build !linux

package builder

import "io/fs"

// Snapshots only exist on Linux; elsewhere nothing is a whiteout.
func isWhiteout(fs.FileInfo) bool { return false }

func isOpaque(string) bool { return false }
