package builder

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// ExportIndex writes the image index idx (a multi-platform image, or
// images with their attestations) to out, as one vertex of out.Progress,
// as buildx writes one: the OCI outputs and the registry take the whole
// index; local and tar a directory per platform (linux_amd64, ...), or the
// root filesystem itself for a single platform; docker the one platform's
// image (refused for several: a docker archive cannot hold them).
// Attestations reach only the OCI outputs and the registry.
func ExportIndex(ctx context.Context, idx v1.ImageIndex, out Output) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("--output type=%s: reading the image index: %w", out.Type, err)
	}
	imgs := store.PlatformImages(im)
	if len(imgs) == 0 {
		return fmt.Errorf("--output type=%s: the image index holds no image for a platform", out.Type)
	}
	if out.Type == "docker" && len(imgs) > 1 {
		return DockerPlatformsError("-o type=docker", "build one --platform, or use type=oci or type=registry", im)
	}
	if err := checkIndexAnnotations(out.Annotations, imgs); err != nil {
		return err
	}
	return out.run(func(out Output) error { return out.exportIndex(ctx, idx, imgs) })
}

// DockerPlatformsError refuses to write index im, of several platforms,
// as a docker archive: what names the flag asking for one, instead what
// to do.
func DockerPlatformsError(what, instead string, im *v1.IndexManifest) error {
	var have []string
	for _, d := range store.PlatformImages(im) {
		have = append(have, descPlatform(d))
	}
	return fmt.Errorf("%s: the image has %d platforms (%s) and a docker archive holds one (docker load takes one image per name): %s",
		what, len(have), strings.Join(have, ", "), instead)
}

func (out Output) exportIndex(ctx context.Context, idx v1.ImageIndex, imgs []v1.Descriptor) error {
	switch out.Type {
	case "oci", "oci-layout", "registry":
		idx, err := annotateIndex(idx, out.Annotations)
		if err != nil {
			return err
		}
		switch out.Type {
		case "oci":
			return out.writeFile(func(w io.Writer) error { return writeOCIIndexArchive(w, idx, out.Names, out.Annotations) })
		case "oci-layout":
			return writeIndexLayout(idx, out)
		}
		return pushIndexTo(ctx, idx, out.Names, out.Registry, out.v)
	case "docker":
		img, err := idx.Image(imgs[0].Digest)
		if err != nil {
			return err
		}
		return writeDockerArchive(img, out)
	case "local":
		return exportSplit(ctx, idx, imgs, out.Dest, func(img v1.Image, dir string) error { return exportTree(ctx, img, dir) })
	case "tar":
		return writeSplitTar(ctx, idx, imgs, out)
	}
	return fmt.Errorf("unknown output type %q", out.Type)
}

// platformDir is buildx's directory name for d's platform (linux_arm_v7).
func platformDir(d v1.Descriptor) string {
	p := d.Platform
	return strings.Join(slicesNonEmpty(p.OS, p.Architecture, p.Variant), "_")
}

func slicesNonEmpty(s ...string) []string {
	var out []string
	for _, e := range s {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// exportSplit writes each platform's image with write: into dest itself
// for one platform, else into dest/<platform>, as buildx's platform-split
// does (its default for several platforms).
func exportSplit(ctx context.Context, idx v1.ImageIndex, imgs []v1.Descriptor, dest string, write func(v1.Image, string) error) error {
	seen := map[string]bool{}
	for _, d := range imgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return fmt.Errorf("image for %s: %w", descPlatform(d), err)
		}
		dir := dest
		if len(imgs) > 1 {
			name := platformDir(d)
			if seen[name] {
				return fmt.Errorf("the index holds two images for %s", descPlatform(d))
			}
			seen[name] = true
			dir = filepath.Join(dest, name)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", dir, err)
		}
		if err := write(img, dir); err != nil {
			return err
		}
	}
	return nil
}

// writeSplitTar is type=tar for an index: one tar of the platforms'
// directories (or of the one platform's root filesystem).
func writeSplitTar(ctx context.Context, idx v1.ImageIndex, imgs []v1.Descriptor, out Output) error {
	tmpBase := filepath.Dir(out.Dest)
	if out.Dest == "-" {
		tmpBase = ""
	}
	dir, err := os.MkdirTemp(tmpBase, ".rootfs-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", out.Dest, err)
	}
	defer os.RemoveAll(dir)
	err = exportSplit(ctx, idx, imgs, dir, func(img v1.Image, d string) error { return flatten(ctx, img, d, out.Owners) })
	if err != nil {
		return err
	}
	return out.writeFile(func(w io.Writer) error {
		return layer.WriteTar(ctx, w, dir, layer.WriteOptions{Source: layer.FromDir, Owners: out.Owners})
	})
}

// checkIndexAnnotations refuses an annotation for a platform the index
// has no image for, as checkAnnotations does for a build.
func checkIndexAnnotations(as []Annotation, imgs []v1.Descriptor) error {
	for _, a := range as {
		if a.Platform == nil {
			continue
		}
		var have []string
		found := false
		for _, d := range imgs {
			have = append(have, descPlatform(d))
			if d.Platform != nil && annotationMatches(a, *d.Platform) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("--annotation %s[%s]:%s: the image has no platform %s (it has %s)",
				a.Type, platforms.Format(*a.Platform), a.Key, platforms.Format(*a.Platform), strings.Join(have, ", "))
		}
	}
	return nil
}

func annotationMatches(a Annotation, p v1.Platform) bool {
	return a.Platform == nil || platforms.Only(specsPlatform(p)).Match(*a.Platform)
}

// annotateIndex is idx with the index annotations and, on each platform
// image's descriptor, the manifest-descriptor ones (for any platform or
// its own). An index stored with them already (a build's) is idx itself,
// byte for byte.
func annotateIndex(idx v1.ImageIndex, as []Annotation) (v1.ImageIndex, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	m := im.DeepCopy()
	changed := false
	add := func(dst map[string]string, src map[string]string) map[string]string {
		for k, v := range src {
			if old, ok := dst[k]; !ok || old != v {
				changed = true
			}
		}
		return merged(dst, src)
	}
	for i, d := range m.Manifests {
		if !d.MediaType.IsImage() || store.IsAttestation(d) || d.Platform == nil {
			continue
		}
		var mine map[string]string
		for _, a := range as {
			if a.Type == AnnotationManifestDescriptor && annotationMatches(a, *d.Platform) {
				if mine == nil {
					mine = map[string]string{}
				}
				mine[a.Key] = a.Value
			}
		}
		if mine != nil {
			m.Manifests[i].Annotations = add(maps.Clone(d.Annotations), mine)
		}
	}
	if a := annotationsOf(as, AnnotationIndex); a != nil {
		m.Annotations = add(maps.Clone(m.Annotations), a)
	}
	if !changed {
		return idx, nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the image index: %w", err)
	}
	return &rewrittenIndex{base: idx, raw: raw, manifest: m}, nil
}

// rewrittenIndex is an index with other JSON (annotations added), the
// same children.
type rewrittenIndex struct {
	base     v1.ImageIndex
	raw      []byte
	manifest *v1.IndexManifest
}

func (x *rewrittenIndex) RawManifest() ([]byte, error)        { return x.raw, nil }
func (x *rewrittenIndex) MediaType() (types.MediaType, error) { return x.base.MediaType() }
func (x *rewrittenIndex) Image(h v1.Hash) (v1.Image, error)   { return x.base.Image(h) }
func (x *rewrittenIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return x.base.ImageIndex(h)
}
func (x *rewrittenIndex) IndexManifest() (*v1.IndexManifest, error) {
	return x.manifest.DeepCopy(), nil
}
func (x *rewrittenIndex) Size() (int64, error) { return int64(len(x.raw)), nil }
func (x *rewrittenIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(strings.NewReader(string(x.raw)))
	return h, err
}

// Blob passes on the stored index's blobs (see storedIndex.Blob).
func (x *rewrittenIndex) Blob(h v1.Hash) (io.ReadCloser, error) {
	if b, ok := x.base.(interface {
		Blob(v1.Hash) (io.ReadCloser, error)
	}); ok {
		return b.Blob(h)
	}
	return nil, fmt.Errorf("blob %s: not an image or an index", h)
}

// writeOCIIndexArchive writes idx as a tar of an OCI image layout whose
// index.json lists idx with the -t names (as writeOCIArchive lists an
// image) and the index-descriptor annotations; every blob once.
func writeOCIIndexArchive(w io.Writer, idx v1.ImageIndex, names []string, as []Annotation) error {
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return err
	}
	desc := v1.Descriptor{MediaType: mt, Digest: digest, Size: int64(len(raw)),
		Annotations: merged(annotations(names), annotationsOf(as, AnnotationIndexDescriptor))}
	top, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
	if err != nil {
		return err
	}
	if f, ok := w.(*os.File); ok {
		// Layer blobs are copied inside the kernel, as writeOCIArchive's.
		w = &archiveFile{f: f}
	}
	direct, _ := w.(*archiveFile)
	tw := tar.NewWriter(w)
	if err := tarBytes(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := tarBytes(tw, "index.json", top); err != nil {
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := tarIndex(tw, direct, idx, map[v1.Hash]bool{}, 0); err != nil {
		return err
	}
	return tw.Close()
}

// tarIndex writes the blobs of idx's children, then idx's own, each once.
func tarIndex(tw *tar.Writer, direct *archiveFile, idx v1.ImageIndex, seen map[v1.Hash]bool, depth int) error {
	if depth > 8 {
		return fmt.Errorf("indexes nested more than 8 deep")
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		switch {
		case seen[d.Digest]:
			// Written already: an index naming the same index over and
			// over (a hostile one) is walked once, not once per path to it.
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := tarIndex(tw, direct, child, seen, depth+1); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			if err := tarImage(tw, direct, img, seen); err != nil {
				return fmt.Errorf("image %s (%s): %w", d.Digest, descPlatform(d), err)
			}
		default:
			b, ok := idx.(interface {
				Blob(v1.Hash) (io.ReadCloser, error)
			})
			if !ok {
				return fmt.Errorf("index entry %s: a %s, neither an image nor an index", d.Digest, d.MediaType)
			}
			rc, err := b.Blob(d.Digest)
			if err != nil {
				return err
			}
			err = tarStream(tw, d.Digest, d.Size, rc, seen)
			rc.Close()
			if err != nil {
				return err
			}
		}
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	return tarOnce(tw, digest, raw, seen)
}

// tarImage writes an image's layers, config and manifest, each once.
func tarImage(tw *tar.Writer, direct *archiveFile, img v1.Image, seen map[v1.Hash]bool) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if err := tarLayer(tw, direct, l, seen); err != nil {
			return err
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := tarOnce(tw, cfgName, cfg, seen); err != nil {
		return err
	}
	m, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	return tarOnce(tw, digest, m, seen)
}

func tarOnce(tw *tar.Writer, h v1.Hash, b []byte, seen map[v1.Hash]bool) error {
	if seen[h] {
		return nil
	}
	seen[h] = true
	return tarBytes(tw, "blobs/sha256/"+h.Hex, b)
}

func tarStream(tw *tar.Writer, h v1.Hash, size int64, r io.Reader, seen map[v1.Hash]bool) error {
	if seen[h] {
		return nil
	}
	seen[h] = true
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + h.Hex, Mode: 0o644, Size: size, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := io.Copy(tw, r)
	return err
}

// writeIndexLayout adds idx to the OCI layout Dest (created when
// missing), named as writeLayout names an image.
func writeIndexLayout(idx v1.ImageIndex, out Output) error {
	p, err := layout.FromPath(out.Dest)
	if err != nil {
		if p, err = layout.Write(out.Dest, empty.Index); err != nil {
			return fmt.Errorf("writing OCI layout %s: %w", out.Dest, err)
		}
	}
	a := merged(annotations(out.Names), annotationsOf(out.Annotations, AnnotationIndexDescriptor))
	if err := p.AppendIndex(idx, layout.WithAnnotations(a)); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", out.Dest, err)
	}
	return nil
}

// PushIndex pushes the index idx (OpenIndex's) under every name: each
// child, then the index; a blob shared by several platforms once.
func PushIndex(ctx context.Context, idx v1.ImageIndex, names []string, reg registry.Config, sink progress.Sink) error {
	if sink == nil {
		sink = progress.Discard
	}
	return pushIndexTo(ctx, idx, names, reg, &vertex{sink: sink})
}

// pushIndexTo is pushAnnotated for an index: its names tag the index.
func pushIndexTo(ctx context.Context, idx v1.ImageIndex, names []string, reg registry.Config, v *vertex) error {
	if len(names) == 0 {
		return fmt.Errorf("pushing needs a name (-t)")
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	// Layers a registry already holds (a base's) are mounted from there.
	return pushNames(ctx, &mountIndex{base: idx, reg: reg}, digest, names, reg, v)
}

// mountIndex is an index whose images mount their layers from the
// repository holding them (see mountable).
type mountIndex struct {
	base v1.ImageIndex
	reg  registry.Config
}

func (x *mountIndex) MediaType() (types.MediaType, error)       { return x.base.MediaType() }
func (x *mountIndex) Digest() (v1.Hash, error)                  { return x.base.Digest() }
func (x *mountIndex) Size() (int64, error)                      { return x.base.Size() }
func (x *mountIndex) RawManifest() ([]byte, error)              { return x.base.RawManifest() }
func (x *mountIndex) IndexManifest() (*v1.IndexManifest, error) { return x.base.IndexManifest() }

func (x *mountIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := x.base.Image(h)
	if err != nil {
		return nil, err
	}
	return mountable(img, x.reg)
}

func (x *mountIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := x.base.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return &mountIndex{base: idx, reg: x.reg}, nil
}
