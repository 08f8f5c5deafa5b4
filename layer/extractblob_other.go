//go:build !linux

package layer

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ExtractBlob needs Linux.
func ExtractBlob(ctx context.Context, r io.Reader, dst string, opts ExtractOptions, mt types.MediaType) (v1.Hash, error) {
	return v1.Hash{}, errNeedsLinux
}
