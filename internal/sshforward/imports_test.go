package sshforward

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports: sshforward is a leaf the CLI and the builder use.
func TestImports(t *testing.T) { importguard.Check(t, nil) }
