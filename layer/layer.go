package layer

import (
	"fmt"
	"io"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer is a layer blob in a Store. It implements go-containerregistry's
// v1.Layer with every value known up front: nothing is hashed or
// compressed again when an image is assembled or pushed.
type Layer struct {
	path      string
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
	// adopt is the directory the layer was written from, to become its
	// snapshot when one is first needed (WriteOptions.Adopt).
	adopt *adoption
}

// adoption is a written directory and what makes it a snapshot. The plan is
// dropped once tried: stages sharing a parent may ask for its snapshot at once.
type adoption struct {
	mu   sync.Mutex
	dir  string
	plan *adoptPlan
}

var _ v1.Layer = (*Layer)(nil)

// Digest is the sha256 of the compressed blob.
func (l *Layer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID is the sha256 of the uncompressed tar stream.
func (l *Layer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size is the size of the compressed blob in bytes.
func (l *Layer) Size() (int64, error) { return l.size, nil }

// MediaType is the OCI layer media type matching the compression.
func (l *Layer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed opens the stored blob.
func (l *Layer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("opening layer blob %s: %w", l.digest, err)
	}
	return f, nil
}

// Uncompressed opens the stored blob and decompresses it.
func (l *Layer) Uncompressed() (io.ReadCloser, error) {
	f, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	dec, _, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("decompressing layer blob %s: %w", l.digest, err)
	}
	return &stackedCloser{ReadCloser: dec, under: f}, nil
}

// Descriptor is the manifest entry for the layer.
func (l *Layer) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.mediaType, Size: l.size, Digest: l.digest}
}

type stackedCloser struct {
	io.ReadCloser
	under io.Closer
}

func (s *stackedCloser) Close() error {
	err := s.ReadCloser.Close()
	if uerr := s.under.Close(); err == nil {
		err = uerr
	}
	return err
}
