package dockerfile

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the front end free of the rest of Strata: the builder
// depends on it, never the other way round.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/strata-build/strata/"
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && pkg != module+"dockerfile" {
			t.Errorf("dockerfile imports %s", pkg)
		}
	}
}
