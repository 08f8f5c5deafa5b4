package dockerfile

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps the front end free of the rest of Strata: the builder
// depends on it, never the other way round.
func TestImports(t *testing.T) { importguard.Check(t, nil) }
