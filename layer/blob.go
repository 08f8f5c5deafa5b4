package layer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Written is a layer blob WriteBlob wrote: its digests, size and media
// type, and, with WriteOptions.Adopt, how its directory can become its
// snapshot.
type Written struct {
	DiffID, Digest v1.Hash
	Size           int64
	MediaType      types.MediaType
	// Adoption is nil when the tree cannot be adopted (or was not asked to).
	Adoption *Adoption
}

// WriteBlob writes the tree at dir as a layer blob to w in one pass: the
// tar stream is hashed (diffID) and compressed, the compressed bytes
// hashed (digest) and counted on their way to w. Nothing is read back.
func WriteBlob(ctx context.Context, w io.Writer, dir string, opts WriteOptions) (Written, error) {
	mt, err := opts.Compression.MediaType()
	if err != nil {
		return Written{}, err
	}
	out := newBlobWriter(w, opts.Compression != None)
	var plan *adoptPlan
	if opts.Adopt {
		plan = newAdoptPlan()
	}
	diffID, err := writeCompressedTar(ctx, out.w, dir, opts, plan)
	digest, size, ferr := out.finish()
	if err == nil {
		err = ferr
	}
	if err != nil {
		return Written{}, fmt.Errorf("writing layer from %s: %w", dir, err)
	}
	if opts.Compression == None {
		digest = diffID
	}
	wr := Written{DiffID: diffID, Digest: digest, Size: size, MediaType: mt}
	if plan != nil && plan.check() == nil {
		wr.Adoption = &Adoption{dir: dir, plan: plan}
	}
	return wr, nil
}

// Layer is the written blob as a Layer whose bytes open reads.
func (w Written) Layer(open Opener) *Layer {
	l := New(v1.Descriptor{MediaType: w.MediaType, Size: w.Size, Digest: w.Digest}, w.DiffID, open)
	l.adopt = w.Adoption
	return l
}

func writeCompressedTar(ctx context.Context, w io.Writer, dir string, opts WriteOptions, plan *adoptPlan) (v1.Hash, error) {
	return compressTar(w, opts.Compression, func(tw io.Writer) error { return writeTar(ctx, tw, dir, opts, plan) })
}

// compressTar runs write on a writer that hashes the tar stream (the
// diffID it returns) and compresses it to w: the one pipeline every layer
// writer (a directory walk, a canonicalised archive) feeds.
func compressTar(w io.Writer, c Compression, write func(io.Writer) error) (v1.Hash, error) {
	zw, err := newCompressor(w, c)
	if err != nil {
		return v1.Hash{}, err
	}
	diff := sha256.New()
	hasher := newAsyncWriter(diff)
	// The tar writer makes a write per 512-byte header; batching them
	// keeps the hash and the compressor on large blocks.
	tw := bufio.NewWriterSize(io.MultiWriter(hasher, zw), 256<<10)
	err = write(tw)
	if err == nil {
		err = tw.Flush()
	}
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("finishing %s stream: %w", c, cerr)
	}
	if herr := hasher.Close(); err == nil {
		err = herr
	}
	if err != nil {
		return v1.Hash{}, err
	}
	return sha256Hash(diff), nil
}

// blobWriter buffers, counts and (optionally) hashes what goes to a file,
// on a goroutine of its own.
type blobWriter struct {
	w     *bufio.Writer
	async *asyncWriter
	hash  hash.Hash
	count countingWriter
}

func newBlobWriter(f io.Writer, hashed bool) *blobWriter {
	b := &blobWriter{}
	ws := []io.Writer{f, &b.count}
	if hashed {
		b.hash = sha256.New()
		ws = append(ws, b.hash)
	}
	b.async = newAsyncWriter(io.MultiWriter(ws...))
	b.w = bufio.NewWriterSize(b.async, asyncBufSize)
	return b
}

// finish flushes everything and returns the digest (when hashed) and size.
// It must be called exactly once, also on error paths, to stop the goroutine.
func (b *blobWriter) finish() (v1.Hash, int64, error) {
	err := b.w.Flush()
	if aerr := b.async.Close(); err == nil {
		err = aerr
	}
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("writing blob: %w", err)
	}
	if b.hash == nil {
		return v1.Hash{}, b.count.n, nil
	}
	return sha256Hash(b.hash), b.count.n, nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// CopyHashed copies r to f, hashing and counting on the way (on a
// goroutine of their own, as WriteBlob does), and returns the sha256 and
// size of what it copied.
func CopyHashed(ctx context.Context, f io.Writer, r io.Reader) (v1.Hash, int64, error) {
	return copyHashed(ctx, f, r)
}

func copyHashed(ctx context.Context, f io.Writer, r io.Reader) (v1.Hash, int64, error) {
	b := newBlobWriter(f, true)
	_, err := io.Copy(b.w, ctxReader{ctx: ctx, r: r})
	h, n, ferr := b.finish()
	if err == nil {
		err = ferr
	}
	return h, n, err
}

// ctxReader stops a long copy when the build is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
