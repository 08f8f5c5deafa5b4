package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// BenchmarkRunTrue measures a step's fixed cost: `RUN true` from Run to its result, on the
// busybox base, reporting the median besides the mean, on each network: the default one
// pays for starting slirp4netns.
func BenchmarkRunTrue(b *testing.B) {
	base := newBase(b)
	for _, n := range []NetworkMode{NetworkNone, NetworkHost, NetworkDefault} {
		name := string(n)
		if n == NetworkDefault {
			name = "default"
		}
		b.Run(name, func(b *testing.B) {
			benchRun(b, New(Options{}), []string{base}, n)
		})
	}
}

// BenchmarkBase10k compares the overlay with the copy fallback on a base of 10,000 files.
func BenchmarkBase10k(b *testing.B) {
	base := newBase(b)
	files := tenThousandFiles(b)
	for _, mode := range []struct {
		name string
		copy bool
	}{{"overlay", false}, {"copy", true}} {
		b.Run(mode.name, func(b *testing.B) {
			benchRun(b, New(Options{ForceCopy: mode.copy}), []string{files, base}, NetworkNone)
		})
	}
}

func benchRun(b *testing.B, e *Executor, lowers []string, network NetworkMode) {
	dir := b.TempDir()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		spec := Spec{
			Lowers:   lowers,
			UpperDir: filepath.Join(dir, fmt.Sprint("upper", i)),
			WorkDir:  filepath.Join(dir, fmt.Sprint("work", i)),
			Args:     []string{"/bin/true"},
			Network:  network,
		}
		res, err := e.Run(context.Background(), spec)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("Run: %v, exit %d", err, res.ExitCode)
		}
		durations = append(durations, time.Since(start))
		b.StopTimer()
		os.RemoveAll(spec.UpperDir)
		b.StartTimer()
	}
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "median-ms")
}

// tenThousandFiles makes a lower of 10,000 small files in 100 directories.
func tenThousandFiles(b *testing.B) string {
	root := filepath.Join(b.TempDir(), "files")
	for d := range 100 {
		dir := filepath.Join(root, "data", fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", f)), []byte(fmt.Sprint(d, f)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return root
}
