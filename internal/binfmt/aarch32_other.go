//go:build !linux

package binfmt

// aarch32: only Linux is asked.
func aarch32() bool { return false }
