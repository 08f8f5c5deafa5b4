package rootless

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports: rootless is a leaf, used by the executor and the CLI; it imports nothing of
// the project.
func TestImports(t *testing.T) { importguard.Check(t, nil) }
