//go:build !unix

package builder

import "io/fs"

// ownerOf has no numeric owner to report outside Unix.
func ownerOf(fs.FileInfo) owner { return owner{} }
