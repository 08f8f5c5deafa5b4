package store

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the package graph as docs/architecture.md draws it: the store sits on layer and the internal rules; nothing below the builder imports it but cmd.
func TestImports(t *testing.T) { importguard.Check(t, []string{"layer", "internal/..."}) }
