// Package importguard keeps the project's package graph as docs/architecture.md draws it:
// each package's import-guard test names the project packages it may import, and fails
// when `go list -deps` finds another.
package importguard

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Module is the project's module path.
const Module = "github.com/strata-build/strata"

// Check fails t when the package in the current directory depends, directly or not, on a
// project package that allowed does not list (by path below the module, "layer",
// "internal/userdb"; a trailing "/..." allows a tree), or on a module banned names (a
// prefix such as "github.com/moby/buildkit").
func Check(t *testing.T, allowed []string, banned ...string) {
	t.Helper()
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
	self, err := exec.Command("go", "list", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	me := strings.TrimSpace(string(self))
	for _, dep := range strings.Fields(string(out)) {
		if dep == me {
			continue
		}
		for _, b := range banned {
			if strings.HasPrefix(dep, b) {
				t.Errorf("%s depends on %s", me, dep)
			}
		}
		rel, ok := strings.CutPrefix(dep, Module+"/")
		if ok && !permitted(rel, allowed) {
			t.Errorf("%s depends on %s, which its import guard does not allow", me, dep)
		}
	}
}

func permitted(rel string, allowed []string) bool {
	for _, a := range allowed {
		if tree, ok := strings.CutSuffix(a, "/..."); ok && (rel == tree || strings.HasPrefix(rel, tree+"/")) {
			return true
		}
		if rel == a {
			return true
		}
	}
	return false
}
