// Command strata builds OCI container images from Dockerfiles without a daemon.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
)

func main() {
	// The RUN sandbox re-executes this binary as its init; nothing else may run first.
	if executor.IsChild() {
		executor.ChildMain()
	}
	setMemoryLimit() // after the sandbox init, which must start at once; see memoryLimit
	// A command re-executed in a user namespace (see enterUserNamespace) starts here.
	rootless.Init()
	rootless.ProbeChild() // the children strata doctor starts to try namespaces and mounts
	// Only libraries write to the standard logger (x/crypto's agent server logs each
	// request it refuses a step); strata reports through its progress output.
	log.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// STRATA_CPUPROFILE=FILE writes a pprof CPU profile of the command, for
	// the benches (go tool pprof FILE).
	if p := os.Getenv("STRATA_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	// STRATA_MEMPROFILE=FILE writes a pprof heap profile taken at the peak of
	// the live heap.
	if p := os.Getenv("STRATA_MEMPROFILE"); p != "" {
		defer startPeakHeapProfile(p)()
	}
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		// Errors carry text from registries and Dockerfiles: no escape
		// sequence of theirs reaches the terminal.
		fmt.Fprintln(os.Stderr, "strata:", progress.Inert(registry.CleanError(err).Error()))
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
