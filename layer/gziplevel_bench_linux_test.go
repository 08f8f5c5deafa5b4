package layer

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var gzipLevelInputs = flag.String("layer.gzipinputs", "", "comma-separated uncompressed tar files for BenchmarkGzipLevels (default: a W3-like 64 MiB random + 64 MiB zeros)")

// gzipConfigs are the (block size, level) pairs BenchmarkGzipLevels tries:
// levels 1-6 at the pinned block size, and a larger block at level 1.
var gzipConfigs = [][2]int{
	{gzipBlockSize, 1}, {gzipBlockSize, 2}, {gzipBlockSize, 3},
	{gzipBlockSize, 4}, {gzipBlockSize, 5}, {gzipBlockSize, 6}, {4 << 20, 1},
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGzipLevels compresses each input with the layer gzip writer at
// gzipConfigs' levels and block sizes, to place the pinned level on the
// time/size curve (bench/layer.sh --gzip-levels). It reports MB/s of input
// and the compressed size (bytes and per cent of the input).
func BenchmarkGzipLevels(b *testing.B) {
	type input struct {
		name string
		data []byte
	}
	var inputs []input
	if *gzipLevelInputs == "" {
		data := append(pseudoRandom("w3", 64<<20), make([]byte, 64<<20)...)
		inputs = append(inputs, input{"random64M+zero64M", data})
	}
	for _, p := range strings.Split(*gzipLevelInputs, ",") {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		inputs = append(inputs, input{strings.TrimSuffix(filepath.Base(p), ".tar"), data})
	}
	for _, in := range inputs {
		for _, c := range gzipConfigs {
			bs, level := c[0], c[1]
			b.Run(fmt.Sprintf("%s/block=%dM/level=%d", in.name, bs>>20, level), func(b *testing.B) {
				b.SetBytes(int64(len(in.data)))
				var n countingWriter
				cpu0 := cpuTime(b)
				for b.Loop() {
					n = countingWriter{}
					zw, err := newGzipWriter(&n, level, bs)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(zw, bytes.NewReader(in.data)); err != nil {
						b.Fatal(err)
					}
					if err := zw.Close(); err != nil {
						b.Fatal(err)
					}
				}
				// CPU seconds, beside the wall time: they are what the level
				// costs when the machine is shared.
				b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
				b.ReportMetric(float64(n.n), "gzbytes")
				b.ReportMetric(100*float64(n.n)/float64(len(in.data)), "%size")
			})
		}
	}
}
