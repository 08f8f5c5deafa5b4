package layer

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the package at the bottom of the import graph: the
// builder and executor use it, never the other way round, and it needs
// none of BuildKit.
func TestImports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOCACHE="+t.TempDir())
	out, err := cmd.Output()
	if err != nil && os.Geteuid() != 0 {
		t.Skipf("go list -deps failed (%v): the module cache may belong to another user", err)
	}
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/strata-build/strata/layer" {
			continue
		}
		for _, banned := range []string{"github.com/moby/buildkit", "github.com/strata-build/strata/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("layer imports %s", dep)
			}
		}
	}
}
