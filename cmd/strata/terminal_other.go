//go:build !linux

package main

import (
	"io"
	"os"
)

// isTerminal reports whether w is a character device, the best guess
// without the terminal ioctls.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func terminalSize(io.Writer) (int, int) { return 80, 24 }
