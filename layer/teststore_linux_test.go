package layer

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/internal/owners"
)

// testStore is what this package's tests need of a store (the real one, package store,
// imports this package): layer blobs in files, snapshots made as Store.Snapshot makes
// them (the adopted directory, else an extraction), and an OCI layout for umoci.
type testStore struct {
	t   testing.TB
	dir string
	n   int
	// session is scratch space on the store's filesystem, where a tree that
	// may be adopted is made.
	session string
}

func openStore(t testing.TB) *testStore {
	dir := t.TempDir()
	return &testStore{t: t, dir: dir, session: dir}
}

func (s *testStore) WriteLayer(ctx context.Context, dir string, opts WriteOptions) (*Layer, error) {
	s.n++
	p := filepath.Join(s.dir, "blob-"+itoa(s.n))
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	w, err := WriteBlob(ctx, f, dir, opts)
	if err != nil {
		return nil, err
	}
	return w.Layer(func() (io.ReadCloser, error) { return os.Open(p) }), nil
}

func (s *testStore) Snapshot(ctx context.Context, l *Layer, opts ExtractOptions) (string, error) {
	s.n++
	dst := filepath.Join(s.dir, "snapshot-"+itoa(s.n))
	if l.Adoption() != nil && (opts.Owners == nil || opts.Owners.OnDisk()) {
		if ok, err := l.Adoption().Into(dst); ok || err != nil {
			return dst, err
		}
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return "", err
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	opts.Mode = OverlayLower
	_, err = Extract(ctx, rc, dst, opts)
	return dst, err
}

// tagLayout writes img to an OCI layout under name and returns the layout's directory.
func (s *testStore) tagLayout(img v1.Image, name string) string {
	dir := filepath.Join(s.dir, "layout")
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: name})); err != nil {
		s.t.Fatal(err)
	}
	return dir
}

func itoa(n int) string {
	return string(rune('a'+n%26)) + string(rune('a'+n/26%26)) + string(rune('a'+n/676%26))
}

// testOwners is the owner policy a test run as this user needs.
func testOwners() owners.Policy {
	if os.Geteuid() != 0 {
		return owners.Recorded
	}
	return owners.Host
}
