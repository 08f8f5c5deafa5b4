// Package overlayfs holds how strata reads and writes overlayfs' own forms in image trees
// (snapshots, overlay upper dirs, the sandbox's copy of the lowers): a whiteout is a
// character device 0:0, and an opaque directory carries OpaqueXattr="y", or
// UserOpaqueXattr="y" where the trusted namespace cannot be written (a mount with
// userxattr, or the sandbox's copy fallback on an upper dir that is itself on overlayfs).
// Every reader accepts both opaque forms.
package overlayfs

import "strings"

const (
	// OpaqueXattr marks an opaque directory, with value "y": it hides what the lowers
	// below hold at its path.
	OpaqueXattr = "trusted.overlay.opaque"
	// UserOpaqueXattr is the same marker in the user namespace.
	UserOpaqueXattr = "user.overlay.opaque"
	// TrustedPrefix and UserPrefix start every xattr overlayfs keeps for itself.
	TrustedPrefix = "trusted.overlay."
	UserPrefix    = "user.overlay."
)

// opaqueXattrs are the opaque marker's forms, trusted first.
var opaqueXattrs = [...]string{OpaqueXattr, UserOpaqueXattr}

// IsIndirection reports the overlay xattrs that point a file at data stored elsewhere
// (renamed directories, metadata-only copy-ups), in either namespace.
func IsIndirection(name string) bool {
	for _, p := range []string{TrustedPrefix, UserPrefix} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return rest == "redirect" || rest == "metacopy"
		}
	}
	return false
}
