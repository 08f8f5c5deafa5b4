package main

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports: the bench's tools stand apart from strata, which they measure from outside
// (the settings are read from layer/compress.go's source, not imported).
func TestImports(t *testing.T) { importguard.Check(t, nil) }
