package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestMemoryLimit: a strata command runs under the soft memory limit that
// keeps its RSS within issue #16's 64 MiB while its live heap is small,
// the limit follows a large live heap so the collector does not run back
// to back, and a user's GOMEMLIMIT wins.
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

	// 64 MiB live: after a GC cycle the limit is twice that.
	live := make([]byte, 64<<20)
	for i := range live {
		live[i] = 1
	}
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) < 128<<20 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got < 128<<20 || got > 160<<20 {
		t.Errorf("with 64 MiB live the limit is %d MiB, want 128-160 MiB", got>>20)
	}
	runtime.KeepAlive(live)
	live = nil
	deadline = time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) > 32<<20 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got > 32<<20 {
		t.Errorf("once the 64 MiB are freed the limit is %d MiB, want it back near 24 MiB", got>>20)
	}

	// The runtime applied the user's value at start; strata keeps it.
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	if got := setMemoryLimit(); got != 1<<30 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Errorf("with GOMEMLIMIT=1GiB the limit is %d (reported %d), want 1 GiB", debug.SetMemoryLimit(-1), got)
	}
}
