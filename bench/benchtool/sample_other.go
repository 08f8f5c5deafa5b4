//go:build !linux

package main

import "errors"

// runSampled needs /proc to sample the process tree.
func runSampled(*record, []string, int) error {
	return errors.New("measure needs Linux (/proc)")
}
