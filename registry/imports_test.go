package registry

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports: reaching registries needs the store (downloads land there), layers and progress events, nothing above.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"layer", "progress", "store", "internal/..."})
}
