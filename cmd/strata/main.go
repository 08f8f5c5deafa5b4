// Command strata builds OCI container images from Dockerfiles without a daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/progress"
)

func main() {
	// The RUN sandbox re-executes this binary as its init; nothing else may run first.
	if executor.IsChild() {
		executor.ChildMain()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		// Errors carry text from registries and Dockerfiles: no escape
		// sequence of theirs reaches the terminal.
		fmt.Fprintln(os.Stderr, "strata:", progress.Inert(err.Error()))
		os.Exit(1)
	}
}
