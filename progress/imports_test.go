package progress

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the package free of the rest of Strata: the builder
// and the renderers both depend on it, so it can depend on neither.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/strata-build/strata/"
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && pkg != module+"progress" {
			t.Errorf("progress imports %s", pkg)
		}
	}
}
