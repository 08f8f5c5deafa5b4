package main

import "syscall"

// childrenMaxRSS is the largest resident set any waited-for descendant of this process
// reached, in bytes (getrusage(RUSAGE_CHILDREN)'s ru_maxrss, KiB on Linux). measure runs
// one command per process, so it is that command's own, or one of its descendants'.
func childrenMaxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10
}
