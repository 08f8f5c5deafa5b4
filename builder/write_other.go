//go:build !linux

package builder

import (
	"context"
	"errors"
	"time"

	"github.com/strata-build/strata/internal/owners"
)

// errNeedsLinux is returned for COPY, ADD and WORKDIR where layers cannot be
// written.
var errNeedsLinux = errors.New("COPY and ADD need Linux")

type writer struct {
	op     *copyOp
	out    string
	now    time.Time
	owners owners.Policy
}

func (w *writer) apply(context.Context, planned) error { return errNeedsLinux }

func (w *writer) finish() error { return errNeedsLinux }

func (w *writer) ensureDir(string) error { return errNeedsLinux }

func (b *build) contextCopy(context.Context, *bindPlan) (string, error) { return "", errNeedsLinux }
