//go:build !unix

package builder

import (
	"context"
	"os"
)

// lockExclusive opens path; there is no flock here, so temporary
// directories of dead builds are never cleaned.
func lockExclusive(path string) (*os.File, error) { return os.OpenFile(path, os.O_RDWR, 0) }

// lockDir opens dir without locking it: sharing=locked and private act
// as shared here.
func lockDir(_ context.Context, dir string, _ bool) (*os.File, error) { return os.Open(dir) }
