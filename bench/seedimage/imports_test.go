package main

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the package graph as docs/architecture.md draws it: the bench's tools stand apart from strata, which they measure from outside.
func TestImports(t *testing.T) { importguard.Check(t, nil) }
