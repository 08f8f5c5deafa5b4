package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// fixedTime is the mtime of every generated file, so that a context made twice is the same
// context to every builder (they all hash or copy mtimes).
var fixedTime = time.Unix(1700000000, 0)

// words are what text data is made of: source-like, compressing about 3-4x with gzip.
var words = []string{
	"func", "return", "if", "err", "nil", "for", "range", "var", "const", "type", "struct",
	"string", "int", "byte", "ctx", "context", "opts", "value", "key", "map", "len", "append",
	"make", "defer", "close", "open", "read", "write", "buf", "n", "i", "j", "path", "name",
	"layer", "image", "digest", "error", "fmt.Errorf", "wrap", "%w", "{", "}", "(", ")", ":=",
	"=", "==", "!=", "&&", "||", "//", "the", "of", "a", "to", "is", "in", "when", "which",
}

// fillOptions are the fill subcommand's flags and argument.
type fillOptions struct {
	seed  uint64
	kind  string
	bytes int64
	files int
	out   string
}

// fillCmd writes deterministic data: one file (or stdout for "-"), or a directory of files.
func fillCmd(args []string) error {
	var o fillOptions
	fs := flag.NewFlagSet("fill", flag.ExitOnError)
	fs.Uint64Var(&o.seed, "seed", 1, "PRNG seed")
	fs.StringVar(&o.kind, "kind", "random", "random (incompressible), text (compressible) or zero")
	fs.Int64Var(&o.bytes, "bytes", 1<<20, "total bytes to write")
	fs.IntVar(&o.files, "files", 0, "write this many files of bytes/files each into the directory OUT")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("fill: want exactly one OUT argument")
	}
	o.out = fs.Arg(0)
	rng := newRand(o.seed)
	if o.files == 0 {
		return writeData(o.out, o.kind, o.bytes, rng)
	}
	return fillDir(o, rng)
}

// fillDir spreads o.bytes over o.files files, 100 to a directory.
func fillDir(o fillOptions, rng *rand.Rand) error {
	per := o.bytes / int64(o.files)
	for i := range o.files {
		p := filepath.Join(o.out, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.dat", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
		}
		if err := writeData(p, o.kind, per, rng); err != nil {
			return err
		}
	}
	return nil
}

func newRand(seed uint64) *rand.Rand {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.New(rand.NewChaCha8(s))
}

// writeData writes n bytes of the kind to path ("-" is stdout) with the fixed mtime.
func writeData(path, kind string, n int64, rng *rand.Rand) error {
	if path == "-" {
		return copyData(os.Stdout, kind, n, rng)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := copyData(f, kind, n, rng); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	return os.Chtimes(path, fixedTime, fixedTime)
}

// copyData writes n bytes of the kind to w.
func copyData(w io.Writer, kind string, n int64, rng *rand.Rand) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	// The chunk size is a constant, not cap(buf): text chunks overshoot
	// and grow the buffer, and sizing the next chunk from its capacity made
	// memory grow with the file (334 MB for 1 GiB), inflating the RSS of
	// the RUN steps that call fill.
	const chunkSize = 64 << 10
	buf := make([]byte, 0, chunkSize+64)
	for n > 0 {
		chunk := min(n, int64(chunkSize))
		buf = fillChunk(buf[:0], kind, int(chunk), rng)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
		n -= chunk
	}
	return bw.Flush()
}

// fillChunk appends exactly n bytes of the kind to dst.
func fillChunk(dst []byte, kind string, n int, rng *rand.Rand) []byte {
	switch kind {
	case "zero":
		return append(dst, make([]byte, n)...)
	case "text":
		for len(dst) < n {
			dst = append(dst, words[rng.IntN(len(words))]...)
			if rng.IntN(8) == 0 {
				dst = append(dst, '\n', '\t')
			} else {
				dst = append(dst, ' ')
			}
		}
		return dst[:n]
	default:
		dst = dst[:n]
		for i := 0; i+8 <= n; i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				dst[i+k] = byte(v >> (8 * k))
			}
		}
		for i := n &^ 7; i < n; i++ {
			dst[i] = byte(rng.Uint64())
		}
		return dst
	}
}
