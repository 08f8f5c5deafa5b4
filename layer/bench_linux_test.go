package layer

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

var (
	benchSize = flag.Int64("layer.size", 64<<20, "bytes of incompressible data for BenchmarkWriteLayer (bench/layer.sh uses 1 GiB)")
	benchDir  = flag.String("layer.dir", "", "keep the benchmark trees here and reuse them (default: a temporary directory)")
)

// benchTree returns a directory holding the named benchmark tree, made by
// fill once: a kept tree is reused when its marker matches.
func benchTree(b *testing.B, base, name string, fill func(dir string) error) string {
	b.Helper()
	dir := filepath.Join(base, name)
	marker := filepath.Join(base, name+".done")
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := fill(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// fillIncompressible writes size bytes of random data in 64 MiB files.
func fillIncompressible(size int64) func(string) error {
	return func(dir string) error {
		const chunk = 64 << 20
		for i, left := 0, size; left > 0; i++ {
			n := min(left, chunk)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("random-%03d", i)), pseudoRandom(fmt.Sprint(i), int(n)), 0o644); err != nil {
				return err
			}
			left -= n
		}
		return nil
	}
}

// fillSmallFiles writes 10,000 source-like files of 100 B to 8 KiB in 100
// directories.
func fillSmallFiles(dir string) error {
	for i := range 10000 {
		d := filepath.Join(dir, fmt.Sprintf("pkg%02d", i%100))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		body := fmt.Appendf(nil, "// file %d\npackage p%d\n", i, i%100)
		for len(body) < 100+(i*7919)%8000 {
			body = fmt.Appendf(body, "func f%d_%d() int { return %d }\n", i, len(body), len(body)*i)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.go", i)), body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func treeSize(b *testing.B, dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			total += fi.Size()
		}
		return err
	})
	return total
}

// BenchmarkWriteLayer measures layer write throughput (MB/s of file
// content) per compression, for incompressible data and for small files.
func BenchmarkWriteLayer(b *testing.B) {
	base := *benchDir
	if base == "" {
		base = b.TempDir()
	}
	trees := []struct {
		name string
		fill func(string) error
	}{
		{fmt.Sprintf("incompressible-%dMiB", *benchSize>>20), fillIncompressible(*benchSize)},
		{"smallfiles-10000", fillSmallFiles},
	}
	for _, tr := range trees {
		for _, c := range compressions {
			b.Run(tr.name+"/"+string(c), func(b *testing.B) {
				dir := benchTree(b, base, tr.name, tr.fill)
				b.SetBytes(treeSize(b, dir))
				s := openStore(b)
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.WriteLayer(context.Background(), dir, WriteOptions{Compression: c}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkExtract measures applying the small-files layer as an overlay
// lower directory (what a snapshot of a pulled layer costs), per compression.
func BenchmarkExtract(b *testing.B) {
	base := *benchDir
	if base == "" {
		base = b.TempDir()
	}
	opts := ExtractOptions{Mode: OverlayLower, Owners: testOwners()}
	for _, c := range compressions {
		b.Run("smallfiles-10000/"+string(c), func(b *testing.B) {
			dir := benchTree(b, base, "smallfiles-10000", fillSmallFiles)
			b.SetBytes(treeSize(b, dir))
			l := writeLayer(b, openStore(b), dir, WriteOptions{Compression: c})
			out := b.TempDir()
			for i := 0; b.Loop(); i++ {
				rc, err := l.Compressed()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Extract(context.Background(), rc, filepath.Join(out, fmt.Sprint(i)), opts); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
