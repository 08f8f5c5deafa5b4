package executor

import (
	"path"
	"strings"

	"github.com/strata-build/strata/internal/fsroot"
)

// resolveInRoot resolves the absolute sandbox path p against the directory root the way the
// kernel would after a chroot to root, so a hostile image cannot point a mount target at a
// host path. It is internal/fsroot's resolution of a host directory (one resolver for the
// whole project: the extractor's rules, layer.ResolvePath's, are the sandbox's), with p
// cleaned as text first as layer.ResolvePath does, made relative to root ("" for root
// itself).
func resolveInRoot(root, p string) (string, error) {
	r, err := fsroot.Resolve(fsroot.Dir(root), fsroot.Clean(p))
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(r, "/"), nil
}

func parentOf(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}
