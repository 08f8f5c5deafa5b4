package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A blob an image of the store uses may not be local: a build that reused a
// layer from a registry cache, or a lazily pulled base, tags its image
// without downloading the layers nothing read. The store then remembers
// the repository ("registry/name") that holds each such blob, so a later
// push mounts it and a later save downloads it. Prune drops the records of
// blobs no tagged image uses.

func (s *Store) originPath(h v1.Hash) string {
	return s.path("origins", h.Algorithm, h.Hex)
}

// SetOrigin records that repo holds blob h.
func (s *Store) SetOrigin(h v1.Hash, repo string) error {
	if err := checkHash(h); err != nil {
		return err
	}
	if repo == "" || strings.ContainsAny(repo, "\n\x00") {
		return fmt.Errorf("bad origin %q for blob %s", repo, h)
	}
	if err := s.writeFileAtomic(s.originPath(h), []byte(repo)); err != nil {
		return fmt.Errorf("recording the origin of blob %s: %w", h, err)
	}
	return nil
}

// Origin is the repository recorded for blob h, or ErrNotFound.
func (s *Store) Origin(h v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	b, err := os.ReadFile(s.originPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("origin of blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("reading the origin of blob %s: %w", h, err)
	}
	return string(b), nil
}
