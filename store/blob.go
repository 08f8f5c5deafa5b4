package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/internal/durable"
	"github.com/strata-build/strata/layer"
)

// WriteLayer writes the tree at dir as a layer blob (layer.WriteBlob) to a
// temporary file that is synced and renamed into blobs/sha256/; when the
// blob already exists the new copy is dropped. With opts.Adopt the layer
// carries dir's adoption, which Snapshot uses.
func (s *Store) WriteLayer(ctx context.Context, dir string, opts layer.WriteOptions) (*layer.Layer, error) {
	tmp, err := s.tempFile("layer")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	w, err := layer.WriteBlob(ctx, tmp, dir, opts)
	if err != nil {
		tmp.Close()
		return nil, err
	}
	if err := s.commitBlob(tmp, w.Digest); err != nil {
		return nil, fmt.Errorf("storing layer from %s: %w", dir, err)
	}
	return w.Layer(s.opener(w.Digest)), nil
}

// commitBlob moves the finished temporary file into blobs/sha256/ unless
// a blob with that digest is already there.
func (s *Store) commitBlob(tmp *os.File, digest v1.Hash) error {
	dst := s.blobPath(digest)
	if _, err := os.Lstat(dst); err == nil {
		return tmp.Close()
	}
	return durable.Commit(tmp, dst)
}

func (s *Store) blobPath(h v1.Hash) string {
	return s.path("blobs", h.Algorithm, h.Hex)
}

// opener reads blob h when a layer's bytes are asked for.
func (s *Store) opener(h v1.Hash) layer.Opener {
	return func() (io.ReadCloser, error) { return s.OpenBlob(h) }
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
	h, n, err := layer.CopyHashed(ctx, tmp, r)
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

// Layer returns the stored blob described by desc as a Layer with the
// given diffID (which comes from the image config, never from hashing).
func (s *Store) Layer(desc v1.Descriptor, diffID v1.Hash) (*layer.Layer, error) {
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
	if _, err := layer.CompressionOf(desc.MediaType); err != nil {
		return nil, err
	}
	touch(p) // a build uses it: for prune's least-recently-used order
	return layer.New(desc, diffID, s.opener(desc.Digest)), nil
}
