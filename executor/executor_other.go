//go:build !linux

package executor

import (
	"context"
	"fmt"
)

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

// CheckUlimit accepts every known limit: steps do not run on this platform.
func CheckUlimit(u Ulimit) error {
	if _, ok := ulimitNames[u.Name]; !ok {
		return fmt.Errorf("unknown limit %q", u.Name)
	}
	return nil
}
