package main

import (
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// startPeakHeapProfile samples the live heap every few milliseconds and, each
// time it reaches a new high, writes a heap profile to path (replacing the
// last one): what the file holds at exit is the profile at the peak, which
// is what bounds the process's RSS, not what is left at the end. It is
// for the benches (STRATA_MEMPROFILE=FILE, go tool pprof -sample_index=inuse_space).
func startPeakHeapProfile(path string) (stop func()) {
	runtime.MemProfileRate = 64 << 10
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak+(256<<10) {
				peak = v
				// A profile's in-use figures are as of the last GC: one
				// now makes them the objects live at this peak.
				runtime.GC()
				writeHeapProfile(path)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func writeHeapProfile(path string) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil && cerr == nil {
		os.Rename(tmp, path)
	}
}
