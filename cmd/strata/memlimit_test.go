package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestMemoryLimit: a strata command runs under the soft memory limit that
// keeps its RSS within issue #16's 64 MiB, and a user's GOMEMLIMIT wins.
func TestMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	env, had := os.LookupEnv("GOMEMLIMIT")
	os.Unsetenv("GOMEMLIMIT")
	t.Cleanup(func() {
		if had {
			os.Setenv("GOMEMLIMIT", env)
		}
	})

	debug.SetMemoryLimit(1 << 40)
	if got := setMemoryLimit(); got != 24<<20 || debug.SetMemoryLimit(-1) != 24<<20 {
		t.Errorf("without GOMEMLIMIT the limit is %d (reported %d), want 24 MiB", debug.SetMemoryLimit(-1), got)
	}

	// The runtime applied the user's value at start; strata keeps it.
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	if got := setMemoryLimit(); got != 1<<30 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Errorf("with GOMEMLIMIT=1GiB the limit is %d (reported %d), want 1 GiB", debug.SetMemoryLimit(-1), got)
	}
}
