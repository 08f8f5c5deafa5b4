//go:build !linux

package overlayfs

import "io/fs"

// Overlay trees exist only on Linux; elsewhere nothing is a whiteout or opaque.

// IsWhiteout reports overlayfs' whiteout: a character device 0:0.
func IsWhiteout(fs.FileInfo) bool { return false }

// IsOpaque reports whether the directory at p carries the opaque marker.
func IsOpaque(string) bool { return false }
