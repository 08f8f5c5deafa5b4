package layer

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// TestCompressorIgnoresCPUCount: the compressed bytes must not depend on
// how many blocks pgzip compresses at once or on GOMAXPROCS.
func TestCompressorIgnoresCPUCount(t *testing.T) {
	data := append(pseudoRandom("cpu", 3<<20), bytes.Repeat([]byte("compressible "), 400000)...)
	for _, c := range compressions {
		t.Run(string(c), func(t *testing.T) {
			want := compress(t, c, data, 0)
			for _, procs := range []int{1, 2, 8} {
				if got := compress(t, c, data, procs); !bytes.Equal(got, want) {
					t.Errorf("GOMAXPROCS=%d changed the %s output", procs, c)
				}
			}
		})
	}
	t.Run("zstd encoders", func(t *testing.T) {
		var outs [2]bytes.Buffer
		for i, n := range []int{1, zstdConcurrency} {
			zw, _ := zstd.NewWriter(&outs[i], zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(n))
			zw.Write(data)
			zw.Close()
		}
		if !bytes.Equal(outs[0].Bytes(), outs[1].Bytes()) {
			t.Error("zstd output depends on the number of encoders")
		}
	})
	t.Run("pgzip blocks", func(t *testing.T) {
		var a, b bytes.Buffer
		for i, buf := range []*bytes.Buffer{&a, &b} {
			zw, _ := pgzip.NewWriterLevel(buf, gzipLevel)
			zw.SetConcurrency(gzipBlockSize, 1+7*i)
			zw.Write(data)
			zw.Close()
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Error("pgzip output depends on the number of blocks in flight")
		}
	})
}

func compress(t testing.TB, c Compression, data []byte, procs int) []byte {
	t.Helper()
	if procs > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	}
	var buf bytes.Buffer
	zw, err := newCompressor(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes, as the tar writer makes them.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 512+len(rest)%70001)
		zw.Write(rest[:n])
		rest = rest[n:]
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGzipHeaderHasNoNameOrTime: the gzip header carries nothing of the host.
func TestGzipHeaderHasNoNameOrTime(t *testing.T) {
	zr, err := gzip.NewReader(bytes.NewReader(compress(t, Gzip, []byte("x"), 0)))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() || zr.Comment != "" {
		t.Errorf("gzip header has name %q, mtime %v, comment %q", zr.Name, zr.ModTime, zr.Comment)
	}
}

func TestDecompressDetectsFormat(t *testing.T) {
	payload := []byte(strings.Repeat("payload ", 1000))
	cases := []struct {
		name   string
		data   []byte
		format Format
	}{
		{"plain", payload, FormatPlain},
		{"empty", nil, FormatPlain},
		{"gzip", compress(t, Gzip, payload, 0), FormatGzip},
		{"zstd", compress(t, Zstd, payload, 0), FormatZstd},
		{"bzip2", external(t, "bzip2", payload), FormatBzip2},
		{"xz", external(t, "xz", payload), FormatXz},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, format, err := Decompress(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if format != tc.format {
				t.Errorf("format %s, want %s", format, tc.format)
			}
			if tc.data != nil && !bytes.Equal(got, payload) {
				t.Errorf("decompressed %d bytes, want the %d-byte payload", len(got), len(payload))
			}
		})
	}
}

// external runs a command-line tool (by default "tool -c", a compressor)
// on data and returns its output, skipping the test if it is absent.
func external(t *testing.T, tool string, data []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed (testdata/install-test-deps.sh installs it)", tool)
	}
	if len(args) == 0 {
		args = []string{"-c"}
	}
	cmd := exec.Command(tool, args...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

func TestParseCompression(t *testing.T) {
	for _, s := range []string{"gzip", "zstd", "none"} {
		c, err := ParseCompression(s)
		if err != nil || string(c) != s {
			t.Errorf("ParseCompression(%q) = %q, %v", s, c, err)
		}
		if _, err := c.MediaType(); err != nil {
			t.Errorf("%s has no media type: %v", s, err)
		}
	}
	if _, err := ParseCompression("lz4"); err == nil {
		t.Error("ParseCompression(lz4) succeeded")
	}
}
