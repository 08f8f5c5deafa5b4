package executor

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the sandbox beside package layer, not above it: the filesystem rules
// both need (path resolution in a root, overlay whiteouts and opaque markers, xattrs, file
// copies) come from internal/, so neither imports the other; and it needs none of BuildKit.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"internal/filecopy", "internal/fsroot", "internal/overlayfs", "internal/rootless", "internal/userdb", "internal/xattrs"}, "github.com/moby/buildkit")
}
