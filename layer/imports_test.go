package layer

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the package near the bottom of the import graph: it
// writes and reads layers, the store and the builder use it, never the
// other way round, and it needs none of BuildKit.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"internal/durable", "internal/owners", "internal/xattrs"}, "github.com/moby/buildkit")
}
