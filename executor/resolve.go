package executor

import (
	"path"
	"path/filepath"
	"strings"

	"github.com/strata-build/strata/layer"
)

// resolveInRoot resolves the absolute sandbox path p against the directory root the way the
// kernel would after a chroot to root, so a hostile image cannot point a mount target at a
// host path. It is layer.ResolvePath (one resolver for the whole project: the extractor's
// rules are the sandbox's), made relative to root ("" for root itself).
func resolveInRoot(root, p string) (string, error) {
	host, err := layer.ResolvePath(root, p)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, host)
	if err != nil || rel == "." {
		return "", err
	}
	return filepath.ToSlash(rel), nil
}

// splitPath returns the components of p without empty and "." ones; ".." is kept.
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func parentOf(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}
