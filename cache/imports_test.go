package cache

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports: the cache sits on the store, the layer type, registries and progress events; it never reads the builder's keys.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"layer", "progress", "registry", "store", "internal/..."})
}
