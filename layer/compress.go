package layer

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/ulikunitz/xz"
)

// Compression names how a layer blob is compressed.
type Compression string

// The compressions the writer produces.
const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
	None Compression = "none"
)

// The compressor settings are part of every digest Strata prints: changing
// one of them (or upgrading klauspost/compress to a version that emits other
// bytes) changes layer digests, which the golden tests in testdata/layer catch.
const (
	// gzipLevel 6 is the level docker, BuildKit, Buildah and Kaniko
	// compress with, so an image is no bigger than theirs: level 1 made
	// layers 10% bigger on a Debian rootfs (69.6 against 62.7 MB) for
	// 0.3 s less on 2 cores; random data costs the same at every level
	// (pgzip stores it). Measured with bench/layer.sh --gzip-levels.
	gzipLevel = 6
	// gzipBlockSize fixes how pgzip splits the stream. Its output depends on
	// the block size and level only, never on how many blocks run at once.
	gzipBlockSize = 1 << 20
	// gzipBlocks bounds the blocks pgzip holds at once, each costing three
	// buffers of gzipBlockSize (input, output, the next block's dictionary)
	// and a flate encoder: 2 keeps both cores compressing while the tar
	// stream fills the next block, in about 7 MiB where 4 took 14.
	gzipBlocks      = 2
	zstdLevel       = zstd.SpeedDefault
	zstdConcurrency = 2
)

// ParseCompression maps a CLI value (gzip, zstd, none) to a Compression.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Gzip, Zstd, None:
		return c, nil
	}
	return "", fmt.Errorf("unknown compression %q (want gzip, zstd or none)", s)
}

// MediaType is the OCI layer media type of a blob compressed with c.
func (c Compression) MediaType() (types.MediaType, error) {
	switch c {
	case Gzip, "":
		return types.MediaType(ocispec.MediaTypeImageLayerGzip), nil
	case Zstd:
		return types.MediaType(ocispec.MediaTypeImageLayerZstd), nil
	case None:
		return types.MediaType(ocispec.MediaTypeImageLayer), nil
	}
	return "", fmt.Errorf("unknown compression %q", string(c))
}

// CompressionOf maps a layer media type back to its compression; Docker's
// media types are accepted because pulled base layers often use them.
func CompressionOf(mt types.MediaType) (Compression, error) {
	switch mt {
	case types.MediaType(ocispec.MediaTypeImageLayerGzip), types.DockerLayer,
		types.MediaType(ocispec.MediaTypeImageLayerNonDistributableGzip), types.DockerForeignLayer:
		return Gzip, nil
	case types.MediaType(ocispec.MediaTypeImageLayerZstd), types.MediaType(ocispec.MediaTypeImageLayerNonDistributableZstd):
		return Zstd, nil
	case types.MediaType(ocispec.MediaTypeImageLayer), types.MediaType(ocispec.MediaTypeImageLayerNonDistributable), types.DockerUncompressedLayer:
		return None, nil
	}
	return "", fmt.Errorf("unsupported layer media type %q", mt)
}

// newCompressor wraps w so that what is written to the result is compressed
// with c. Close flushes the compressor but never closes w.
func newCompressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Gzip, "":
		return newGzipWriter(w, gzipLevel, gzipBlockSize)
	case Zstd:
		// Two encoders overlap compressing one block with filling the next;
		// the stream is the same as a single encoder's (checked by a test).
		// WithConcurrentBlocks would split the input and change the bytes.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(zstdConcurrency))
		if err != nil {
			return nil, fmt.Errorf("creating zstd writer: %w", err)
		}
		return zw, nil
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", string(c))
}

// newGzipWriter is the layer gzip writer at a level and block size (the
// benchmarks try others than the pinned ones).
func newGzipWriter(w io.Writer, level, blockSize int) (*pgzip.Writer, error) {
	zw, err := pgzip.NewWriterLevel(w, level)
	if err != nil {
		return nil, fmt.Errorf("creating gzip writer: %w", err)
	}
	// pgzip writes time.Time{} as a non-zero date: the Unix epoch is
	// what a gzip header uses for "no mtime". The block size is pinned
	// for byte-identical output on any CPU count.
	zw.Header.ModTime = time.Unix(0, 0)
	if err := zw.SetConcurrency(blockSize, gzipBlocks); err != nil {
		return nil, fmt.Errorf("configuring gzip writer: %w", err)
	}
	return zw, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Format is a container format detected from the first bytes of a blob.
type Format string

// The formats Decompress recognises.
const (
	FormatPlain Format = "plain"
	FormatGzip  Format = "gzip"
	FormatZstd  Format = "zstd"
	FormatBzip2 Format = "bzip2"
	FormatXz    Format = "xz"
)

var magics = []struct {
	format Format
	magic  []byte
}{
	{FormatGzip, []byte{0x1f, 0x8b}},
	{FormatZstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{FormatBzip2, []byte("BZh")},
	{FormatXz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
}

// Decompress detects the compression of r from its content (never from a
// file name) and returns a reader of the decompressed bytes and the format.
func Decompress(r io.Reader) (io.ReadCloser, Format, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("reading archive header: %w", err)
	}
	format := FormatPlain
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			format = m.format
			break
		}
	}
	rc, err := decompressor(br, format)
	return rc, format, err
}

func decompressor(r io.Reader, f Format) (io.ReadCloser, error) {
	switch f {
	case FormatGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("opening gzip stream: %w", err)
		}
		return zr, nil
	case FormatZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("opening zstd stream: %w", err)
		}
		return zr.IOReadCloser(), nil
	case FormatBzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case FormatXz:
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("opening xz stream: %w", err)
		}
		return io.NopCloser(xr), nil
	}
	return io.NopCloser(r), nil
}
