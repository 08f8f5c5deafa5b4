//go:build !unix

package builder

import "os"

// lockExclusive opens path; there is no flock here, so temporary
// directories of dead builds are never cleaned.
func lockExclusive(path string) (*os.File, error) { return os.OpenFile(path, os.O_RDWR, 0) }
