package builder

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// manyInstructions is a FROM scratch Dockerfile of n instructions in all:
// n-1 lines made by line(i), each setting a new key.
func manyInstructions(n int, line func(i int) string) string {
	var sb strings.Builder
	sb.WriteString("FROM scratch\n")
	for i := 1; i < n; i++ {
		sb.WriteString(line(i))
		sb.WriteByte('\n')
	}
	return sb.String()
}

// BenchmarkManyInstructions parses and builds Dockerfiles of thousands of
// ENV or LABEL lines. Memory used to grow with the square of the count
// (every step held its own copy of the environment), so it reports the
// peak heap and the peak RSS of a build besides the allocations.
func BenchmarkManyInstructions(b *testing.B) {
	env := func(i int) string { return fmt.Sprintf("ENV K%d=value%d", i, i) }
	label := func(i int) string { return fmt.Sprintf("LABEL l%d=value%d", i, i) }
	for _, bc := range []struct {
		name string
		n    int
		line func(int) string
	}{
		{"ENV-1250", 1250, env},
		{"ENV-5000", 5000, env},
		{"LABEL-5000", 5000, label},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchmarkBuild(b, manyInstructions(bc.n, bc.line))
		})
	}
}

func benchmarkBuild(b *testing.B, src string) {
	tb := newTestBuild(b, nil)
	noCache := func(o *Options) { o.NoCache = true }
	var peak peakMemory
	peak.start()
	b.ReportAllocs()
	for b.Loop() {
		if _, out, err := tb.build(src, noCache); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
	heap, rss := peak.stop()
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
	if rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	}
}

// peakMemory samples the heap in use while a benchmark runs, and resets
// the kernel's peak RSS (VmHWM) first so that earlier benchmarks in the
// same process do not show in it.
type peakMemory struct {
	heap atomic.Uint64
	done chan struct{}
	quit chan struct{}
}

func (p *peakMemory) start() {
	// Return the earlier benchmarks' garbage, so the RSS starts low.
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later); without
	// it the peak RSS is not reported.
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	p.done, p.quit = make(chan struct{}), make(chan struct{})
	go p.sample()
}

func (p *peakMemory) sample() {
	defer close(p.done)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	// runtime/metrics, unlike ReadMemStats, does not stop the world.
	// Objects plus unused bytes in in-use spans is MemStats.HeapInuse.
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	for {
		metrics.Read(samples)
		if inuse := samples[0].Value.Uint64() + samples[1].Value.Uint64(); inuse > p.heap.Load() {
			p.heap.Store(inuse)
		}
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
	}
}

// stop returns the peak heap in use and the peak RSS, both in bytes; the
// RSS is 0 when /proc does not tell it.
func (p *peakMemory) stop() (heap, rss uint64) {
	close(p.quit)
	<-p.done
	return p.heap.Load(), vmHWM()
}

// vmHWM is the process's peak resident set size from /proc/self/status.
func vmHWM() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
