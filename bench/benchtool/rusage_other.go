//go:build !linux

package main

// childrenMaxRSS: measure only runs on Linux (see sample_other.go).
func childrenMaxRSS() int64 { return 0 }
