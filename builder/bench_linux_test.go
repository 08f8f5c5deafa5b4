package builder

import (
	"fmt"
	"testing"
)

// contextFiles is a context of n small files in a few directories.
func contextFiles(n int) map[string]string {
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("src/d%d/f%d.txt", i%10, i)] = fmt.Sprintf("content %d\n", i)
	}
	return files
}

// BenchmarkCopyTree measures a COPY of 1000 files that misses the cache:
// hashing the sources, writing the tree and the layer.
func BenchmarkCopyTree(b *testing.B) {
	tb := newTestBuild(b, contextFiles(1000))
	for b.Loop() {
		if _, out, err := tb.build("FROM scratch\nCOPY src /src/\n", func(o *Options) { o.NoCache = true }); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
}

// BenchmarkCachedRebuild measures a rebuild served from the cache: the
// context is hashed again, nothing is written.
func BenchmarkCachedRebuild(b *testing.B) {
	tb := newTestBuild(b, contextFiles(1000))
	src := "FROM scratch\nCOPY src /src/\nENV A=1\nCMD [\"x\"]\n"
	tb.build(src)
	for b.Loop() {
		if _, out, err := tb.build(src); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
}
