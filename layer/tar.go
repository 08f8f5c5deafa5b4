package layer

import (
	"archive/tar"
	"strings"
	"time"

	"github.com/strata-build/strata/internal/overlayfs"
	"github.com/strata-build/strata/internal/xattrs"
)

// OCI whiteout names (image-spec layer.md, "Whiteouts").
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Overlayfs markers (internal/overlayfs): an opaque directory carries one
// of these xattrs with value "y"; the user.* form is what unprivileged
// (userxattr) mounts and the sandbox's copy fallback write.
const (
	overlayOpaqueXattr     = overlayfs.OpaqueXattr
	overlayUserOpaqueXattr = overlayfs.UserOpaqueXattr
	paxXattrPrefix         = "SCHILY.xattr."
)

// keepXattr reports whether an xattr belongs in a layer. Only attributes
// that mean the same on every host are kept: file capabilities and user
// attributes. SELinux labels are host policy and overlay's own attributes
// are bookkeeping of the mount that produced the upper dir.
func keepXattr(name string) bool { return xattrs.Kept(name) }

// clampTime gives the mtime written for t: whole seconds (so filesystems
// with coarser timestamps round-trip to the same bytes) and never later
// than epoch when an epoch is set (SOURCE_DATE_EPOCH semantics).
func clampTime(t time.Time, epoch *time.Time) time.Time {
	t = t.Truncate(time.Second)
	if epoch != nil && t.After(*epoch) {
		t = epoch.Truncate(time.Second)
	}
	return t.UTC()
}

// canonicalize removes everything from hdr that depends on the host rather
// than on the file tree: names of users and groups differ between hosts,
// access and change times between runs, and the format must not be left to
// the tar writer's choice per entry.
func canonicalize(hdr *tar.Header) {
	hdr.Format = tar.FormatPAX
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.Mode &= 0o7777
}

// isWhiteoutName reports whether a base name is reserved for OCI whiteouts.
func isWhiteoutName(base string) bool {
	return strings.HasPrefix(base, whiteoutPrefix)
}
