package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/layer"
)

// Loaded is an image Load stored: its manifest and the names the archive
// gives it (none for an untagged image), which the caller tags.
type Loaded struct {
	Names []string
	Desc  v1.Descriptor
}

// maxJSON bounds the JSON files of an archive (index, manifests, configs)
// read into memory.
const maxJSON = 16 << 20

// Load stores the images of src, as docker load reads them: a docker
// archive (docker save, `-o type=docker`), an OCI archive, either
// possibly compressed, or an OCI layout directory. An OCI image keeps its
// manifest, so its digest; a docker archive's image gets an OCI manifest
// of its config (so its image ID) and layers. Every blob is verified
// against its digest before it is stored; nothing is tagged.
func (s *Store) Load(ctx context.Context, src string, r io.Reader) ([]Loaded, error) {
	var a archive
	if src != "-" {
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			root, err := os.OpenRoot(src)
			if err != nil {
				return nil, err
			}
			defer root.Close()
			a = dirArchive{root}
		}
	}
	if a == nil {
		t, err := s.openTar(ctx, r)
		if err != nil {
			return nil, err
		}
		defer t.f.Close()
		a = t
	}
	if _, err := a.stat("index.json"); err == nil {
		return s.loadOCI(ctx, a)
	}
	if _, err := a.stat("manifest.json"); err == nil {
		return s.loadDocker(ctx, a)
	}
	return nil, errors.New("neither a docker archive (no manifest.json) nor an OCI layout (no index.json)")
}

// archive is the files of an archive or a layout directory.
type archive interface {
	stat(name string) (int64, error)
	open(name string) (io.ReadCloser, error)
}

// dirArchive is a layout directory, read through an os.Root: its
// symlinks resolve inside it, so a "blob" linked to a host file (the
// store's owner may be root) is not read, not stored, not hashed in an
// error.
type dirArchive struct{ root *os.Root }

func (d dirArchive) stat(name string) (int64, error) {
	if !fs.ValidPath(name) {
		return 0, fmt.Errorf("%s: not a path inside the layout", name)
	}
	fi, err := d.root.Stat(name)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: not a regular file", name)
	}
	return fi.Size(), nil
}

func (d dirArchive) open(name string) (io.ReadCloser, error) {
	// A FIFO would block the open: refused first.
	if _, err := d.stat(name); err != nil {
		return nil, err
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, err
	}
	// Checked again on what was opened: the file may have been swapped.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return f, nil
}

// tarArchive is a tar file read in place: where each member's bytes are.
type tarArchive struct {
	f     *os.File
	files map[string]tarMember
}

type tarMember struct {
	off, size int64
	link      string // a symlink's target, resolved from the member's directory
}

// openTar copies r (decompressed) to a temporary file of the store and
// indexes its members.
func (s *Store) openTar(ctx context.Context, r io.Reader) (*tarArchive, error) {
	rc, _, err := layer.Decompress(r)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, err := s.tempFile("load")
	if err != nil {
		return nil, err
	}
	// Unlinked at once: the open file is all that is needed.
	os.Remove(f.Name())
	if _, _, err := layer.CopyHashed(ctx, f, rc); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the archive: %w", err)
	}
	t := &tarArchive{f: f, files: map[string]tarMember{}}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		switch h.Typeflag {
		case tar.TypeReg:
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				f.Close()
				return nil, err
			}
			t.files[name] = tarMember{off: off, size: h.Size}
		case tar.TypeSymlink:
			// Older docker saves link a layer seen twice to its first copy.
			t.files[name] = tarMember{link: path.Join(path.Dir(name), h.Linkname)}
		}
	}
	if len(t.files) == 0 {
		f.Close()
		return nil, errors.New("not a tar archive: no files")
	}
	return t, nil
}

func (t *tarArchive) member(name string) (tarMember, error) {
	name = path.Clean(name)
	for range 10 {
		m, ok := t.files[name]
		if !ok {
			return m, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		if m.link == "" {
			return m, nil
		}
		name = m.link
	}
	return tarMember{}, fmt.Errorf("%s: too many symlinks", name)
}

func (t *tarArchive) stat(name string) (int64, error) {
	m, err := t.member(name)
	return m.size, err
}

func (t *tarArchive) open(name string) (io.ReadCloser, error) {
	m, err := t.member(name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(io.NewSectionReader(t.f, m.off, m.size)), nil
}

func readJSON(a archive, name string, v any) error {
	rc, err := a.open(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxJSON))
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// putMember stores the archive's file name as a blob: of digest want when
// set (refused otherwise).
func (s *Store) putMember(ctx context.Context, a archive, name string, want v1.Hash) (v1.Hash, int64, error) {
	rc, err := a.open(name)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer rc.Close()
	h, n, err := s.PutBlob(ctx, rc, want)
	if err != nil {
		return h, n, fmt.Errorf("%s: %w", name, err)
	}
	return h, n, nil
}

func blobName(h v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	return "blobs/" + h.Algorithm + "/" + h.Hex, nil
}

// putOCIBlob stores the blob d describes, refused unless it has d's size
// too: a stored image whose descriptor lies fails every later use of it
// (strata images included), so it is refused here.
func (s *Store) putOCIBlob(ctx context.Context, a archive, d v1.Descriptor) error {
	name, err := blobName(d.Digest)
	if err != nil {
		return err
	}
	_, n, err := s.putMember(ctx, a, name, d.Digest)
	if err != nil {
		return err
	}
	if n != d.Size {
		return fmt.Errorf("%s has %d bytes, its descriptor says %d", name, n, d.Size)
	}
	return nil
}

// loadOCI stores the images index.json lists; an index of several
// platforms whole (Loaded.Desc is the index), else its image for this
// machine's architecture.
func (s *Store) loadOCI(ctx context.Context, a archive) ([]Loaded, error) {
	var idx v1.IndexManifest
	if err := readJSON(a, "index.json", &idx); err != nil {
		return nil, err
	}
	var out []Loaded
	for _, d := range idx.Manifests {
		names := ociNames(d.Annotations)
		if d.MediaType.IsIndex() {
			if err := s.putOCIBlob(ctx, a, d); err != nil {
				return nil, err
			}
			raw, err := s.readBlob(d.Digest)
			if err != nil {
				return nil, err
			}
			var inner v1.IndexManifest
			if err := json.Unmarshal(raw, &inner); err != nil {
				return nil, fmt.Errorf("index %s: %w", d.Digest, err)
			}
			// Several platforms: the index is kept whole, as docker with the
			// containerd store and buildx's --load do; one platform (and its
			// attestations) is that image, as before. So is an archive
			// holding only some of the index's manifests (docker save of an
			// image pulled for one platform): a partial index could be
			// neither pushed nor saved whole.
			if len(PlatformImages(&inner)) > 1 && holdsAll(a, inner.Manifests) {
				if err := s.loadIndex(ctx, a, d, 0, map[v1.Hash]bool{}); err != nil {
					return nil, err
				}
				out = append(out, Loaded{Names: names, Desc: v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}})
				continue
			}
			pd, err := platformManifest(inner.Manifests)
			if err != nil {
				return nil, fmt.Errorf("index %s: %w", d.Digest, err)
			}
			d = pd
		}
		if !d.MediaType.IsImage() {
			continue // an attestation, a signature: not an image to run
		}
		desc, err := s.loadManifest(ctx, a, d.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d.Digest, err)
		}
		out = append(out, Loaded{Names: names, Desc: desc})
	}
	if len(out) == 0 {
		return nil, errors.New("index.json lists no image")
	}
	return out, nil
}

// holdsAll reports whether the archive has the manifest of every entry.
func holdsAll(a archive, ds []v1.Descriptor) bool {
	for _, d := range ds {
		name, err := blobName(d.Digest)
		if err != nil {
			return false
		}
		if _, err := a.stat(name); err != nil {
			return false
		}
	}
	return true
}

// ociNames are an index entry's names: containerd's full name, else the
// OCI ref.name when it is a whole name (a store's, skopeo's) rather than
// a tag alone.
func ociNames(ann map[string]string) []string {
	if n := ann["io.containerd.image.name"]; n != "" {
		return []string{n}
	}
	if n := ann[ocispec.AnnotationRefName]; strings.ContainsAny(n, "/:") {
		return []string{n}
	}
	return nil
}

// platformManifest picks this machine's image from a multi-platform
// index, as docker load does.
func platformManifest(ds []v1.Descriptor) (v1.Descriptor, error) {
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH && d.MediaType.IsImage() {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image for linux/%s", runtime.GOARCH)
}

// loadManifest stores an image's config, layers and manifest, the
// manifest as it is when it is OCI's, else rewritten as one.
func (s *Store) loadManifest(ctx context.Context, a archive, digest v1.Hash) (v1.Descriptor, error) {
	name, err := blobName(digest)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var m v1.Manifest
	if err := readJSON(a, name, &m); err != nil {
		return v1.Descriptor{}, err
	}
	if err := s.putOCIBlob(ctx, a, m.Config); err != nil {
		return v1.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	for _, l := range m.Layers {
		if _, err := layer.CompressionOf(ociLayerType(l.MediaType)); err != nil {
			return v1.Descriptor{}, err
		}
		if err := s.putOCIBlob(ctx, a, l); err != nil {
			return v1.Descriptor{}, fmt.Errorf("layer: %w", err)
		}
	}
	if m.MediaType == types.OCIManifestSchema1 && m.Config.MediaType == types.OCIConfigJSON {
		h, n, err := s.putMember(ctx, a, name, digest)
		return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n}, err
	}
	m.MediaType, m.Config.MediaType = types.OCIManifestSchema1, types.OCIConfigJSON
	for i := range m.Layers {
		m.Layers[i].MediaType = ociLayerType(m.Layers[i].MediaType)
	}
	return s.putManifest(ctx, m)
}

func (s *Store) putManifest(ctx context.Context, m v1.Manifest) (v1.Descriptor, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, n, err := s.PutBlob(ctx, bytes.NewReader(raw), v1.Hash{})
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n}, err
}

// ociLayerType is Docker's layer media type's OCI equal (same bytes).
func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return mt
}

// dockerManifest is an entry of a docker archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// loadDocker stores the images of a docker archive's manifest.json, each
// layer as the archive holds it (plain or compressed), checked against
// the config's diffIDs.
func (s *Store) loadDocker(ctx context.Context, a archive) ([]Loaded, error) {
	var ms []dockerManifest
	if err := readJSON(a, "manifest.json", &ms); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errors.New("manifest.json lists no image")
	}
	var out []Loaded
	for _, dm := range ms {
		cfgDigest, cfgSize, err := s.putMember(ctx, a, dm.Config, v1.Hash{})
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		raw, err := s.readBlob(cfgDigest)
		if err != nil {
			return nil, err
		}
		cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dm.Config, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(dm.Layers) {
			return nil, fmt.Errorf("%s lists %d layers, manifest.json %d", dm.Config, len(cfg.RootFS.DiffIDs), len(dm.Layers))
		}
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgDigest, Size: cfgSize}, Layers: []v1.Descriptor{}}
		for i, name := range dm.Layers {
			d, err := s.loadDockerLayer(ctx, a, name, cfg.RootFS.DiffIDs[i])
			if err != nil {
				return nil, err
			}
			m.Layers = append(m.Layers, d)
		}
		desc, err := s.putManifest(ctx, m)
		if err != nil {
			return nil, err
		}
		out = append(out, Loaded{Names: dm.RepoTags, Desc: desc})
	}
	return out, nil
}

// loadDockerLayer stores a docker archive's layer file and checks that its
// content is the diffID the config gives.
func (s *Store) loadDockerLayer(ctx context.Context, a archive, name string, diffID v1.Hash) (v1.Descriptor, error) {
	h, n, err := s.putMember(ctx, a, name, v1.Hash{})
	if err != nil {
		return v1.Descriptor{}, err
	}
	f, err := s.OpenBlob(h)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer f.Close()
	rc, format, err := layer.Decompress(f)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", name, err)
	}
	defer rc.Close()
	mt := map[layer.Format]types.MediaType{layer.FormatPlain: types.OCIUncompressedLayer, layer.FormatGzip: types.OCILayer,
		layer.FormatZstd: types.OCILayerZStd}[format]
	if mt == "" {
		return v1.Descriptor{}, fmt.Errorf("%s: a layer compressed with %s, which images do not use", name, format)
	}
	got, _, err := layer.CopyHashed(ctx, io.Discard, rc)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", name, err)
	}
	if got != diffID {
		return v1.Descriptor{}, fmt.Errorf("%s has content %s, the config says %s", name, got, diffID)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: n}, nil
}
