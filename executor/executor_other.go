//go:build !linux

package executor

import "context"

// IsChild reports whether this process is a sandbox init; never on this platform.
func IsChild() bool { return false }

// ChildMain is the sandbox init; it does nothing on this platform.
func ChildMain() {}

// Run returns ErrNeedsLinux.
func (e *Executor) Run(ctx context.Context, spec Spec) (Result, error) {
	return Result{}, ErrNeedsLinux
}

// cgroups are Linux's.
type cgroups struct{}
