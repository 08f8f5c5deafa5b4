package registry

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Mountable is img with every layer whose origin (a repository, "" for
// none) is known made a remote.MountableLayer, so that a push through
// go-containerregistry mounts it from its origin when that is the same
// registry, instead of uploading it, and reads its bytes (downloading
// them, for a lazy layer) only when the registry cannot mount it.
func (c Config) Mountable(img v1.Image, origin func(v1.Hash) string) (v1.Image, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	out := &mountImage{Image: img, layers: make([]v1.Layer, len(ls)), byDigest: map[v1.Hash]v1.Layer{}}
	for i, l := range ls {
		out.layers[i] = l
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if o := origin(d); o != "" {
			repo, err := c.ParseRepo(o)
			if err != nil {
				return nil, err
			}
			out.layers[i] = &remote.MountableLayer{Layer: l, Reference: repo.Digest(d.String())}
		}
		out.byDigest[d] = out.layers[i]
	}
	return out, nil
}

type mountImage struct {
	v1.Image
	layers   []v1.Layer
	byDigest map[v1.Hash]v1.Layer
}

func (m *mountImage) Layers() ([]v1.Layer, error) { return m.layers, nil }

func (m *mountImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if l, ok := m.byDigest[h]; ok {
		return l, nil
	}
	return m.Image.LayerByDigest(h)
}
