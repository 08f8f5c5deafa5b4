//go:build !linux

package filecopy

import "os"

// OpenNoAtime opens src for reading; only Linux has O_NOATIME.
func OpenNoAtime(src string) (*os.File, error) { return os.Open(src) }
