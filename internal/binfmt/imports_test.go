package binfmt

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the package graph as docs/architecture.md draws it: internal packages import nothing of the project.
func TestImports(t *testing.T) { importguard.Check(t, nil) }
