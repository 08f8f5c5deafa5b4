package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadSettings: the level and block size come from the constants, the blocks at once
// from the SetConcurrency call, however they are spelled.
func TestReadSettings(t *testing.T) {
	src := `package layer

const (
	gzipLevel     = gzip.BestCompression
	gzipBlockSize = 1 << 18
	other         = 3
)

func f() { zw.SetConcurrency(gzipBlockSize, 2*other) }
`
	path := filepath.Join(t.TempDir(), "compress.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := readSettings(path)
	if want := (settings{level: 9, block: 1 << 18, blocks: 6}); err != nil || s != want {
		t.Errorf("readSettings = %+v, %v; want %+v", s, err, want)
	}
}

// TestReadsTheLayerWriter: the real layer/compress.go still has what readSettings looks for.
func TestReadsTheLayerWriter(t *testing.T) {
	s, err := readSettings("../../layer/compress.go")
	if err != nil {
		t.Fatal(err)
	}
	if s.level < -3 || s.level > 9 || s.block < 1<<10 || s.blocks < 1 {
		t.Errorf("implausible settings %+v", s)
	}
}

func TestCompressRoundTrips(t *testing.T) {
	in := bytes.Repeat([]byte("strata bench "), 300_000)
	var out bytes.Buffer
	if err := compress(&out, bytes.NewReader(in), settings{level: 1, block: 1 << 20, blocks: 4}); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, in) {
		t.Fatalf("round trip gave %d bytes (%v), want %d", len(got), err, len(in))
	}
}

// TestReadSettingsThroughAParameter: the writer's constructor takes the block size as a
// parameter; the constants still say what it is.
func TestReadSettingsThroughAParameter(t *testing.T) {
	src := `package layer

const (
	gzipLevel     = gzip.BestSpeed
	gzipBlockSize = 1 << 19
	gzipBlocks    = 3
)

func newGzipWriter(w io.Writer, level, blockSize int) {
	zw.SetConcurrency(blockSize, gzipBlocks)
}
`
	path := filepath.Join(t.TempDir(), "compress.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := readSettings(path)
	if want := (settings{level: 1, block: 1 << 19, blocks: 3}); err != nil || s != want {
		t.Errorf("readSettings = %+v, %v; want %+v", s, err, want)
	}
	// Without the constant, a parameter cannot be read: an error, not a guess.
	if err := os.WriteFile(path, []byte(strings.Replace(src, "gzipBlockSize = 1 << 19", "other = 1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := readSettings(path); err == nil {
		t.Errorf("readSettings = %+v without the block size constant, want an error", s)
	}
}
