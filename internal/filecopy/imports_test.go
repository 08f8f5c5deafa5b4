package filecopy

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

func TestImports(t *testing.T) { importguard.Check(t, nil) }
