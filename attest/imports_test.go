package attest

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

// TestImports keeps attest a leaf the builder calls: no project package, and none of
// BuildKit's (its provenance types drag its solver in); ggcr, image-spec and the standard
// library are what it needs.
func TestImports(t *testing.T) {
	importguard.Check(t, nil, "github.com/moby/buildkit", "github.com/containerd", "github.com/in-toto", "github.com/spdx")
}
