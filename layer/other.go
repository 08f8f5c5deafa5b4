//go:build !linux

package layer

import (
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var errNeedsLinux = errors.New("layer: writing and extracting layers needs Linux")

// WriteTar needs Linux (lstat, xattrs and device numbers as Linux has them).
func WriteTar(ctx context.Context, w io.Writer, dir string, opts WriteOptions) error {
	return errNeedsLinux
}

// Extract needs Linux.
func Extract(ctx context.Context, r io.Reader, dst string, opts ExtractOptions) (v1.Hash, error) {
	return v1.Hash{}, errNeedsLinux
}

type adoptPlan struct{}

func newAdoptPlan() *adoptPlan { return &adoptPlan{} }

func writeTar(ctx context.Context, w io.Writer, dir string, opts WriteOptions, plan *adoptPlan) error {
	return errNeedsLinux
}

func (p *adoptPlan) check() error { return errNeedsLinux }

// Into needs Linux.
func (a *Adoption) Into(dst string) (bool, error) { return false, errNeedsLinux }
