package layer

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the package near the bottom of the import graph: it
// writes and reads layers, the store and the builder use it, never the
// other way round, and it needs none of BuildKit. The filesystem rules it
// shares with the executor and the builder (path resolution, overlay
// forms, xattrs) come from internal/, never from the executor.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"internal/durable", "internal/fsroot", "internal/overlayfs", "internal/owners", "internal/xattrs"}, "github.com/moby/buildkit")
}
