package layer

import "github.com/strata-build/strata/internal/fsroot"

// cleanName turns an archive name into a /-rooted clean path. A leading
// "/" and any ".." are confined to the root, the way a chroot sees them.
func cleanName(name string) string { return fsroot.Clean(name) }

// ResolvePath returns the host path of p inside root as a chroot at root
// sees it: symlinks under root are followed but never out of it, and ".."
// stops at root. p itself is first cleaned as text (path.Clean), as tar
// names and Docker's destination paths are, so a ".." in p drops the
// component before it even when that is a symlink; a ".." in a link
// target is walked after the link. Missing components are kept as they
// are (and the walk goes on past them), so the result can name something
// to create. Use it for destinations inside an image
// tree (COPY to a path that is a symlink in the image). The resolution is
// internal/fsroot's, the one every package uses.
func ResolvePath(root, p string) (string, error) {
	return resolveIn(root, cleanName(p))
}

// resolveIn returns the host path of rel (a /-rooted path) inside root,
// following the symlinks that already exist under root as if root were
// "/" (a chroot): an absolute link target restarts at root, ".." never
// climbs above it. Components that do not exist yet are appended as they
// are, so the result may name something still to be created. The result
// has no symlink among its existing components, which holds as long as
// nothing but the caller changes the tree meanwhile.
func resolveIn(root, rel string) (string, error) {
	return fsroot.Dir(root).Resolve(rel)
}
