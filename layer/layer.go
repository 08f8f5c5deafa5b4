package layer

import (
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer is a layer blob with every value known up front: it implements
// go-containerregistry's v1.Layer without hashing or compressing anything
// again when an image is assembled or pushed. Its bytes are read only when
// something asks for them, through its Opener (a store's blob file, or a
// download), so a layer can be used by digest before it is local.
type Layer struct {
	open      Opener
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
	// adopt is the directory the layer was written from, to become its
	// snapshot when one is first needed (WriteOptions.Adopt).
	adopt *Adoption
	// origin is a repository ("registry/name") that holds the blob, for a
	// layer whose bytes may not be local: a push to that registry mounts it
	// from there instead of uploading it.
	origin string
}

// Opener opens a layer's compressed blob.
type Opener func() (io.ReadCloser, error)

// New is the layer desc describes, with the diffID its image's config
// gives (never hashed here), whose blob open reads.
func New(desc v1.Descriptor, diffID v1.Hash, open Opener) *Layer {
	return &Layer{open: open, digest: desc.Digest, diffID: diffID, size: desc.Size, mediaType: desc.MediaType}
}

// WithOrigin is l, noting that the repository repo ("registry/name") holds
// its blob.
func (l *Layer) WithOrigin(repo string) *Layer {
	c := *l
	c.origin = repo
	return &c
}

// Origin is the repository noted by WithOrigin, or "".
func (l *Layer) Origin() string { return l.origin }

// Adoption is the directory a layer was written from and what makes it the
// layer's snapshot (WriteOptions.Adopt); nil when there is none.
func (l *Layer) Adoption() *Adoption { return l.adopt }

// Adoption is a written directory and what makes it a snapshot. The plan is
// dropped once tried: stages sharing a parent may ask for its snapshot at once.
type Adoption struct {
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

// Compressed opens the blob.
func (l *Layer) Compressed() (io.ReadCloser, error) {
	f, err := l.open()
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
