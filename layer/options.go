package layer

import (
	"time"

	"github.com/strata-build/strata/internal/owners"
)

// policy is p, or owners.Host when nil.
func policy(p owners.Policy) owners.Policy {
	if p == nil {
		return owners.Host
	}
	return p
}

// Source says what kind of directory a layer is written from.
type Source int

const (
	// FromDir is a plain directory tree (a COPY/ADD result, a rootfs):
	// every file in it is content, nothing is a whiteout.
	FromDir Source = iota
	// FromUpper is an overlayfs upper directory: character devices 0:0 are
	// deletions and directories marked opaque hide what lies below them.
	FromUpper
)

// WriteOptions controls how a directory becomes a layer.
type WriteOptions struct {
	Source Source
	// Compression of the blob; the zero value means Gzip.
	Compression Compression
	// Epoch, when set, is the latest mtime written (SOURCE_DATE_EPOCH):
	// later mtimes are clamped to it so rebuilds give identical bytes.
	Epoch *time.Time
	// Adopt makes the written directory the layer's snapshot, once
	// Store.Snapshot is first asked for it (when Owners are on disk),
	// instead of extracting the blob again. The walk records what differs
	// from the extracted form (sub-second or clamped times, xattrs the
	// stream drops, overlay's own whiteouts and opaque markers, sockets,
	// the root's mode and owner); Snapshot fixes that and renames the
	// directory into snapshots/. The caller leaves the directory alone from
	// then on, and removes it once the layer is no longer used if it is
	// still there. Nothing is moved when it lies on another filesystem than
	// the store, or when the tree cannot be a snapshot (a file also linked
	// from outside it; a char device 0:0 in a FromDir tree, which Snapshot
	// refuses too): the blob is extracted then.
	Adopt bool
	// Owners reads the owners written into the headers: owners.Host (the
	// default) takes them from disk, owners.Recorded from what a rootless
	// build recorded.
	Owners owners.Policy
}

// ExtractMode says how the whiteouts of a layer are applied.
type ExtractMode int

const (
	// Flatten applies the layer onto an existing tree: whiteouts delete.
	Flatten ExtractMode = iota
	// OverlayLower makes the target an overlayfs lower directory: OCI
	// whiteouts become character devices 0:0 and opaque markers become the
	// trusted.overlay.opaque=y xattr, so an overlay mount of stacked lowers
	// shows what a reader of the OCI image sees.
	OverlayLower
)

// ExtractOptions controls how an archive is applied to a directory.
type ExtractOptions struct {
	Mode ExtractMode
	// MaxSize bounds the decompressed size of the archive in bytes, so a
	// small compressed bomb cannot fill the disk; 0 means no bound.
	MaxSize int64
	// Owners gives extracted files the archive's owners: owners.Host (the
	// default) chowns them, owners.Recorded records them for a caller who
	// cannot chown.
	Owners owners.Policy
	// Export writes a tree for people to use on the host, not for a
	// container: files owned by the calling user (no owner applied), no
	// setuid or setgid bit, no file capability, and no device node (skipped).
	// Run as root, a setuid-root shell or a 0666 disk node of the image
	// would otherwise give any local user who reaches the directory what
	// the store keeps from them (as tar --no-same-owner, and BuildKit's
	// local exporter, which writes as the client's user).
	Export bool
}
