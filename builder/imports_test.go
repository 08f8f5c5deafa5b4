package builder

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports: the builder sits above the front end, the sandbox, the layer code and the
// store, and below the CLI; the filesystem rules it shares with them come from internal/.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"cache", "dockerfile", "executor", "layer", "progress", "registry", "store", "internal/..."})
}
