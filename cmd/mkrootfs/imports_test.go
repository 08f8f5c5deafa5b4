package main

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the package graph as docs/architecture.md draws it: mkrootfs needs the minirootfs tree and the layer writer only.
func TestImports(t *testing.T) {
	importguard.Check(t, []string{"internal/minirootfs", "layer", "internal/..."})
}
