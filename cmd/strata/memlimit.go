package main

import (
	"os"
	"runtime/debug"
)

// memoryLimit is the Go runtime's soft memory limit for a strata command
// (issue #16: peak RSS <= 64 MiB, sandbox processes included). Strata's
// live heap stays near 10 MiB whatever the layer size (its buffers are
// bounded), but with GOGC alone the heap may grow to twice the live heap
// and freed pages go back to the OS only slowly, so the RSS left by one
// layer write (about 55 MiB on W1) was still held while the next RUN's
// sandbox and command ran beside it. With the limit the collector runs
// earlier and the scavenger returns freed pages before the limit is
// passed; GOGC still paces it below the limit. A soft limit never fails an
// allocation: a build that truly needs more only collects more often (the
// runtime caps that at half the CPU).
const memoryLimit = 24 << 20

// setMemoryLimit applies memoryLimit unless the user set GOMEMLIMIT, which
// the runtime has applied already. It returns the limit in force.
func setMemoryLimit() int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(memoryLimit)
	return memoryLimit
}
