package layer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WriteLayer writes the tree at dir as a layer blob in one pass: the tar
// stream is hashed (diffID) and compressed, the compressed bytes hashed
// (digest), counted and written to a temporary file that is synced and
// renamed into blobs/sha256/. Nothing is read back. When the blob already
// exists the new copy is dropped.
func (s *Store) WriteLayer(ctx context.Context, dir string, opts WriteOptions) (*Layer, error) {
	mt, err := opts.Compression.MediaType()
	if err != nil {
		return nil, err
	}
	tmp, err := s.tempFile("layer")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	out := newBlobWriter(tmp, opts.Compression != None)
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
		tmp.Close()
		return nil, fmt.Errorf("writing layer from %s: %w", dir, err)
	}
	if opts.Compression == None {
		digest = diffID
	}
	if err := s.commitBlob(tmp, digest); err != nil {
		return nil, fmt.Errorf("storing layer from %s: %w", dir, err)
	}
	l := &Layer{path: s.blobPath(digest), digest: digest, diffID: diffID, size: size, mediaType: mt}
	if plan != nil && plan.check() == nil {
		l.adopt = &adoption{dir: dir, plan: plan}
	}
	return l, nil
}

func writeCompressedTar(ctx context.Context, w io.Writer, dir string, opts WriteOptions, plan *adoptPlan) (v1.Hash, error) {
	zw, err := newCompressor(w, opts.Compression)
	if err != nil {
		return v1.Hash{}, err
	}
	diff := sha256.New()
	hasher := newAsyncWriter(diff)
	// The tar writer makes a write per 512-byte header; batching them
	// keeps the hash and the compressor on large blocks.
	tw := bufio.NewWriterSize(io.MultiWriter(hasher, zw), 256<<10)
	err = writeTar(ctx, tw, dir, opts, plan)
	if err == nil {
		err = tw.Flush()
	}
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("finishing %s stream: %w", opts.Compression, cerr)
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

// commitBlob moves the finished temporary file into blobs/sha256/ unless
// a blob with that digest is already there.
func (s *Store) commitBlob(tmp *os.File, digest v1.Hash) error {
	dst := s.blobPath(digest)
	if _, err := os.Lstat(dst); err == nil {
		return tmp.Close()
	}
	return commit(tmp, dst)
}

func (s *Store) blobPath(h v1.Hash) string {
	return s.path("blobs", h.Algorithm, h.Hex)
}

// BlobPath is the file of blob h (which may not exist yet).
func (s *Store) BlobPath(h v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	return s.blobPath(h), nil
}

// HasBlob reports whether blob h is in the store.
func (s *Store) HasBlob(h v1.Hash) (bool, error) {
	p, err := s.BlobPath(h)
	if err != nil {
		return false, err
	}
	_, err = os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// OpenBlob opens blob h; a missing blob is ErrNotFound.
func (s *Store) OpenBlob(h v1.Hash) (*os.File, error) {
	p, err := s.BlobPath(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	return f, err
}

// PutBlob stores the bytes of r as a blob (a pulled layer, a config, a
// manifest) and returns their digest and size. When want is set, content
// with another digest is refused and nothing is stored.
func (s *Store) PutBlob(ctx context.Context, r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	if want != (v1.Hash{}) {
		if err := checkHash(want); err != nil {
			return v1.Hash{}, 0, err
		}
	}
	tmp, err := s.tempFile("blob")
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer os.Remove(tmp.Name())
	h, n, err := copyHashed(ctx, tmp, r)
	if err == nil && want != (v1.Hash{}) && h != want {
		err = fmt.Errorf("content has digest %s, want %s", h, want)
	}
	if err == nil {
		err = s.commitBlob(tmp, h)
	}
	if err != nil {
		tmp.Close()
		return v1.Hash{}, 0, fmt.Errorf("storing blob: %w", err)
	}
	return h, n, nil
}

func copyHashed(ctx context.Context, f *os.File, r io.Reader) (v1.Hash, int64, error) {
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

// Layer returns the stored blob described by desc as a Layer with the
// given diffID (which comes from the image config, never from hashing).
func (s *Store) Layer(desc v1.Descriptor, diffID v1.Hash) (*Layer, error) {
	p, err := s.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("layer blob %s: %w", desc.Digest, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if fi.Size() != desc.Size {
		return nil, fmt.Errorf("layer blob %s has %d bytes, descriptor says %d", desc.Digest, fi.Size(), desc.Size)
	}
	if _, err := compressionOf(desc.MediaType); err != nil {
		return nil, err
	}
	return &Layer{path: p, digest: desc.Digest, diffID: diffID, size: desc.Size, mediaType: desc.MediaType}, nil
}
