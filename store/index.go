package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// initLayout writes oci-layout and an empty index.json when missing.
func (s *Store) initLayout() error {
	lock, err := lockFile(s.path("locks", "index.lock"), true, true)
	if err != nil {
		return err
	}
	defer lock.unlock()
	if _, err := os.Stat(s.path(ocispec.ImageLayoutFile)); errors.Is(err, fs.ErrNotExist) {
		data, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := s.writeFileAtomic(s.path(ocispec.ImageLayoutFile), data); err != nil {
			return err
		}
	}
	if _, err := os.Stat(s.path(ocispec.ImageIndexFile)); errors.Is(err, fs.ErrNotExist) {
		return s.writeIndex(emptyIndex())
	}
	return nil
}

func emptyIndex() *v1.IndexManifest {
	return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
}

// Index reads index.json: the images tagged in the store.
func (s *Store) Index() (*v1.IndexManifest, error) {
	data, err := os.ReadFile(s.path(ocispec.ImageIndexFile))
	if err != nil {
		return nil, fmt.Errorf("reading store index: %w", err)
	}
	idx := emptyIndex()
	if err := json.Unmarshal(data, idx); err != nil {
		return nil, fmt.Errorf("parsing store index: %w", err)
	}
	return idx, nil
}

func (s *Store) writeIndex(idx *v1.IndexManifest) error {
	data, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding store index: %w", err)
	}
	return s.writeFileAtomic(s.path(ocispec.ImageIndexFile), data)
}

// updateIndex applies fn to index.json under the index lock, so tags set
// by concurrent builds are never lost.
func (s *Store) updateIndex(fn func(*v1.IndexManifest)) error {
	lock, err := lockFile(s.path("locks", "index.lock"), true, true)
	if err != nil {
		return err
	}
	defer lock.unlock()
	idx, err := s.Index()
	if err != nil {
		return err
	}
	fn(idx)
	return s.writeIndex(idx)
}

// Tag points name at the manifest or image index desc (whose blob must be
// stored; an index's children too, for the commands that read it), in
// the org.opencontainers.image.ref.name annotation that skopeo's and
// umoci's oci:<dir>:<name> references look up. An old image of that name
// loses the tag.
func (s *Store) Tag(name string, desc v1.Descriptor) error {
	if name == "" {
		return errors.New("tagging: empty name")
	}
	if ok, err := s.HasBlob(desc.Digest); err != nil || !ok {
		return fmt.Errorf("tagging %s: manifest %s is not in the store", name, desc.Digest)
	}
	desc.Annotations = map[string]string{ocispec.AnnotationRefName: name}
	err := s.updateIndex(func(idx *v1.IndexManifest) {
		idx.Manifests = append(withoutTag(idx.Manifests, name), desc)
	})
	if err != nil {
		return fmt.Errorf("tagging %s: %w", name, err)
	}
	return nil
}

// Untag removes name from the index (ErrNotFound when no image has it);
// the blobs stay until pruned.
func (s *Store) Untag(name string) error {
	found := false
	err := s.updateIndex(func(idx *v1.IndexManifest) {
		n := len(idx.Manifests)
		idx.Manifests = withoutTag(idx.Manifests, name)
		found = len(idx.Manifests) < n
	})
	if err == nil && !found {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("untagging %s: %w", name, err)
	}
	return nil
}

// Resolve returns the descriptor tagged name (a manifest's, or an image
// index's: see its MediaType), or ErrNotFound.
func (s *Store) Resolve(name string) (v1.Descriptor, error) {
	idx, err := s.Index()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range idx.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] == name {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("image %s: %w", name, ErrNotFound)
}

func withoutTag(ds []v1.Descriptor, name string) []v1.Descriptor {
	return slices.DeleteFunc(ds, func(d v1.Descriptor) bool {
		return d.Annotations[ocispec.AnnotationRefName] == name
	})
}
