package userdb

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the package at the bottom of the import graph: the
// builder and the executor both use it, and must not meet through it.
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
	const self = "github.com/strata-build/strata/internal/userdb"
	for _, dep := range strings.Fields(string(out)) {
		if dep != self && strings.HasPrefix(dep, "github.com/strata-build/strata/") {
			t.Errorf("userdb imports %s", dep)
		}
		if !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") {
			continue // the standard library
		}
		if dep != self {
			t.Errorf("userdb imports %s: it needs nothing outside the standard library", dep)
		}
	}
}
