// Package layer turns directory trees into OCI layer blobs, applies layer
// blobs to directories, and keeps both in the content-addressed Store.
//
// Writing: Store.WriteLayer (or WriteTar for the bare stream) walks a
// directory and writes one canonical PAX tar stream: siblings sorted by
// name, a directory before its contents, numeric ids without names, masked
// modes, whole-second mtimes, no access or change times, only portable
// xattrs (security.capability, user.*), hardlinks by inode with the first
// path in walk order as the target. Source says whether the directory is
// an overlayfs upper dir (whiteouts and opaque markers are converted to the
// OCI form) or a plain tree. Files named .wh.* are refused in both.
//
// Epoch: WriteOptions.Epoch is SOURCE_DATE_EPOCH. When set, mtimes later
// than it are clamped to it, so the same tree written twice gives the same
// diffID and digest whatever its on-disk times. The package never reads
// the environment; cmd/ passes the value in.
//
// Compression is pinned (gzip through pgzip at level 6, the peers' level,
// with a fixed block size, zstd with two encoders at its default level, or
// none): the golden digests in testdata/layer fail when a library upgrade
// changes bytes.
//
// Streaming an archive: ReadCanonical reads a tar (any compression) once,
// models what Extract would leave on disk, and writes that tree's
// canonical layer without creating a file, byte for byte what Extract and
// WriteBlob give; what it cannot reproduce exactly is ErrNotCanonical,
// before any output, and the caller extracts instead.
//
// Extracting: Extract applies a plain, gzip, zstd, bzip2 or xz archive
// (detected from its bytes) either as an overlay lower directory or flattened onto an existing tree. Every
// name, symlink and hardlink is resolved inside the target as a chroot
// would see it, so nothing outside the target is ever written. This holds
// when nothing else modifies the target during the extraction: callers
// extract into directories that only they use (the Store's snapshots do).
// Set ExtractOptions.MaxSize for archives from untrusted sources: it bounds
// both the decompressed stream and the file content written (sparse
// entries). ResolvePath applies the same chroot-style resolution to one
// path, for callers that write into an image tree themselves.
//
// Adopting: with WriteOptions.Adopt the written directory itself becomes
// the layer's snapshot when Store.Snapshot is first asked for it, instead
// of the blob being decompressed and every file created again. The tar
// walk records what differs between the tree and what extracting its
// stream gives (times, dropped xattrs, overlay whiteouts and markers, the
// root's mode and owner); Snapshot applies that, syncs and renames the
// directory into place, so an adopted snapshot equals an extracted one.
//
// Overlay upper dirs must come from mounts with redirect_dir=off and
// metacopy=off: the writer refuses the xattrs those features leave.
//
// The Store: Open a Store per process (or per build) and Close it when
// done. Its methods take the locks they need themselves (flock on files
// under locks/, released if the process dies); callers hold none. Blobs,
// snapshots, cache entries and index.json appear atomically. The store's
// root is an OCI image layout, so `skopeo copy oci:<root>:<tag>` and
// `umoci unpack --image <root>:<tag>` read tagged images directly. Nothing
// is ever deleted from blobs/ or snapshots/ by this package; pruning must
// exclude concurrent builds.
//
// Writing and extracting need Linux; elsewhere they return an error.
package layer
