package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// memoryLimit is the Go runtime's soft memory limit for a strata command
// whose live heap is small, as it is whatever the layer size (its buffers
// are bounded): issue #16 wants the peak RSS <= 64 MiB, sandbox processes
// included. With GOGC alone the heap may grow to twice the live heap and
// freed pages go back to the OS only slowly, so the RSS one layer write
// left (about 55 MiB on W1) was still held while the next RUN's sandbox
// and command ran beside it. Under the limit the collector runs earlier
// and the scavenger returns freed pages before the limit is passed.
const memoryLimit = 24 << 20

// limitFor is the limit for a live heap of live bytes: memoryLimit, or
// twice the live heap once the live heap passes twice memoryLimit (the
// per-file records of a build context with 100,000 files reach 80 MB).
// Under a limit the live heap nearly fills, the collector runs back to
// back, taking up to half the CPU; at twice the live heap it runs no more
// often than GOGC=100 makes it. Up to 48 MiB live (W1's layer writes peak
// near 24) the limit stays put: a raised limit outlives a brief rise until
// the next GC cycle, and the pages it let the heap keep stay resident.
func limitFor(live uint64) int64 {
	if live <= 2*memoryLimit {
		return memoryLimit
	}
	return 2 * int64(live)
}

// setMemoryLimit applies memoryLimit and re-sets it after every GC cycle
// from the live heap (limitFor), unless the user set GOMEMLIMIT, which the
// runtime has applied already. It returns the limit in force.
func setMemoryLimit() int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		tuning.Store(false)
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(memoryLimit)
	if tuning.Swap(true) {
		return memoryLimit // already following the live heap
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var rearm func(*gcSentinel)
	rearm = func(*gcSentinel) {
		if !tuning.Load() {
			return
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(limitFor(sample[0].Value.Uint64()))
		}
		runtime.SetFinalizer(new(gcSentinel), rearm)
	}
	runtime.SetFinalizer(new(gcSentinel), rearm)
	return memoryLimit
}

// tuning is whether the limit follows the live heap.
var tuning atomic.Bool

// gcSentinel is garbage from birth: its finalizer runs once per GC cycle.
// It is large enough not to share a tiny-allocator block, whose finalizers
// may never run.
type gcSentinel struct{ _ [64]byte }
