package main

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports: the CLI is the top of the graph; it uses the library packages and internal/,
// never another command or the benchmarks.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"attest", "builder", "cache", "dockerfile", "executor", "layer", "progress", "registry", "store", "internal/..."})
}
