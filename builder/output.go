package builder

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
)

// Output is where an image goes, as docker build's --output.
type Output struct {
	// Type is oci, oci-layout, docker, registry, local or tar.
	Type string
	// Dest is the file or directory (unused for registry); "-" sends an
	// archive (oci, docker, tar) to Stdout.
	Dest   string
	Stdout io.Writer
	// Names are the -t names: annotations in archives, tags in a registry.
	Names    []string
	Registry registry.Config
	// Progress receives the export's events: a vertex named as BuildKit
	// names its exporters, the bytes written or pushed, and where the
	// image went (progress.Exported, progress.Pushed). Discarded when nil.
	Progress progress.Sink
	// Owners keeps the image's owners in the tree type=tar flattens before
	// writing it (owners.Host when nil; owners.Recorded where strata cannot chown).
	Owners owners.Policy
	// Annotations are the --annotation values (the manifest's are already
	// in the image): manifest-descriptor on the image's descriptor (an OCI
	// layout's index.json, or the index), index and index-descriptor on an
	// OCI index holding the image, which the OCI and registry outputs then
	// write. A docker archive has no place for them.
	Annotations []Annotation

	v *vertex // the export's, set by Export
}

// exporters are the output types and their vertexes' names, BuildKit's.
var exporters = map[string]string{
	"oci":        "exporting to oci image format",
	"oci-layout": "exporting to oci image format",
	"docker":     "exporting to docker image format",
	"registry":   "exporting to image",
	"local":      "exporting to client directory",
	"tar":        "exporting to client tarball",
}

// Export writes img to out, as one vertex of out.Progress.
func Export(ctx context.Context, img v1.Image, out Output) error {
	return out.run(func(out Output) error { return out.export(ctx, img) })
}

// run checks out and runs fn as the export's vertex.
func (out Output) run(fn func(Output) error) error {
	name, ok := exporters[out.Type]
	if !ok {
		return fmt.Errorf("unknown output type %q: want oci, oci-layout, docker, registry, local or tar", out.Type)
	}
	if out.Type != "registry" && out.Dest == "" {
		return fmt.Errorf("--output type=%s needs dest=", out.Type)
	}
	// Named apart from the build's vertexes ("1", "2", ...), which share
	// the stream.
	id := "export:" + out.Type + ":" + out.Dest
	if out.Type == "registry" {
		id = "export:registry:" + strings.Join(out.Names, ",")
	}
	out.v = &vertex{sink: out.Progress, id: id, start: time.Now()}
	if out.v.sink == nil {
		out.v.sink = progress.Discard
	}
	out.v.sink.Event(progress.VertexStarted{ID: id, Name: name, Started: out.v.start})
	err := fn(out)
	if err == nil && out.Type != "registry" {
		out.v.sink.Event(progress.Exported{ID: id, Type: out.Type, Dest: out.Dest})
	}
	out.v.finish(err)
	return err
}

func (out Output) export(ctx context.Context, img v1.Image) error {
	switch out.Type {
	case "oci":
		return out.writeFile(func(w io.Writer) error { return writeOCIArchive(w, img, out.Names, out.Annotations) })
	case "oci-layout":
		return writeLayout(img, out)
	case "docker":
		return writeDockerArchive(img, out)
	case "registry":
		return pushAnnotated(ctx, img, out.Names, out.Registry, out.v, out.Annotations)
	case "local":
		return exportTree(ctx, img, out.Dest)
	case "tar":
		return writeRootfsTar(ctx, img, out)
	}
	return fmt.Errorf("unknown output type %q", out.Type)
}

// writeFile writes an archive to Dest, or to Stdout for "-", counting
// the bytes for the export's vertex.
func (out Output) writeFile(fn func(io.Writer) error) error {
	if out.v != nil {
		m := out.v.meter("writing archive")
		inner := fn
		fn = func(w io.Writer) error {
			mw := io.MultiWriter(w, m)
			if f, ok := w.(*os.File); ok {
				mw = &archiveFile{f: f, m: m}
			}
			if err := inner(mw); err != nil {
				return err
			}
			m.done()
			return nil
		}
	}
	if out.Dest != "-" {
		return writeFileWith(out.Dest, fn)
	}
	if out.Stdout == nil {
		return fmt.Errorf("--output type=%s,dest=-: no standard output", out.Type)
	}
	return fn(out.Stdout)
}

// writeFileWith writes a file through a temporary name, so a failed
// export leaves no half-written archive.
func writeFileWith(dest string, fn func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	// By descriptor: in a directory others can write, the name could be
	// swapped for a symlink to a file of root's.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return os.Rename(tmp.Name(), dest)
}

// annotations name the image in an index as BuildKit's exporters do.
func annotations(names []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	a := map[string]string{"io.containerd.image.name": names[0]}
	if ref, err := name.ParseReference(names[0]); err == nil {
		a["org.opencontainers.image.ref.name"] = ref.Identifier()
	}
	return a
}

// WriteOCIArchive writes img as a tar of an OCI image layout, streaming
// the blobs from the store.
func WriteOCIArchive(w io.Writer, img v1.Image, names []string) error {
	return writeOCIArchive(w, img, names, nil)
}

// writeOCIArchive is WriteOCIArchive with the --annotation values: with an
// index (withIndex), index.json lists the index, which lists the image.
func writeOCIArchive(w io.Writer, img v1.Image, names []string, as []Annotation) error {
	if f, ok := w.(*os.File); ok {
		w = &archiveFile{f: f}
	}
	direct, _ := w.(*archiveFile)
	tw := tar.NewWriter(w)
	m, err := img.RawManifest()
	if err != nil {
		return err
	}
	desc, err := manifestDescriptor(img, names)
	if err != nil {
		return err
	}
	wrap, err := withIndex(img, as)
	if err != nil {
		return err
	}
	var rawIndex []byte
	if wrap != nil {
		if rawIndex, err = wrap.RawManifest(); err != nil {
			return err
		}
		if desc.Digest, err = wrap.Digest(); err != nil {
			return err
		}
		desc.MediaType, desc.Size = types.OCIImageIndex, int64(len(rawIndex))
		desc.Annotations = merged(desc.Annotations, annotationsOf(as, AnnotationIndexDescriptor))
	} else {
		desc.Annotations = merged(desc.Annotations, annotationsOf(as, AnnotationManifestDescriptor))
	}
	idx, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
	if err != nil {
		return err
	}
	if err := tarBytes(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := tarBytes(tw, "index.json", idx); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if err := tarBlobs(tw, direct, img, m, digest); err != nil {
		return err
	}
	if rawIndex != nil {
		if err := tarBytes(tw, "blobs/sha256/"+desc.Digest.Hex, rawIndex); err != nil {
			return err
		}
	}
	return tw.Close()
}

func manifestDescriptor(img v1.Image, names []string) (v1.Descriptor, error) {
	digest, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: digest, Size: size, Annotations: annotations(names)}, err
}

// tarBlobs writes the image's blobs; with direct (the archive's file) the
// layers are copied into it inside the kernel.
func tarBlobs(tw *tar.Writer, direct *archiveFile, img v1.Image, manifest []byte, digest v1.Hash) error {
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := tarBytes(tw, "blobs/sha256/"+digest.Hex, manifest); err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := tarBytes(tw, "blobs/sha256/"+cfgName.Hex, cfg); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	seen := map[v1.Hash]bool{}
	for _, l := range layers {
		if err := tarLayer(tw, direct, l, seen); err != nil {
			return err
		}
	}
	return nil
}

// tarLayer writes l's blob once, copying a stored blob inside the kernel
// when direct is tw's file.
func tarLayer(tw *tar.Writer, direct *archiveFile, l v1.Layer, seen map[v1.Hash]bool) error {
	d, err := l.Digest()
	if err != nil || seen[d] {
		return err
	}
	seen[d] = true
	size, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	hdr := &tar.Header{Name: "blobs/sha256/" + d.Hex, Mode: 0o644, Size: size, Format: tar.FormatPAX}
	if f, ok := rc.(*os.File); ok && direct != nil {
		return direct.copyEntry(tw, hdr, f)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, rc)
	return err
}

func tarBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func writeLayout(img v1.Image, out Output) error {
	p, err := layout.FromPath(out.Dest)
	if err != nil {
		if p, err = layout.Write(out.Dest, empty.Index); err != nil {
			return fmt.Errorf("writing OCI layout %s: %w", out.Dest, err)
		}
	}
	wrap, err := withIndex(img, out.Annotations)
	if err != nil {
		return err
	}
	if wrap != nil {
		err = p.AppendIndex(wrap, layout.WithAnnotations(merged(annotations(out.Names), annotationsOf(out.Annotations, AnnotationIndexDescriptor))))
	} else {
		err = p.AppendImage(img, layout.WithAnnotations(merged(annotations(out.Names), annotationsOf(out.Annotations, AnnotationManifestDescriptor))))
	}
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", out.Dest, err)
	}
	return nil
}

// writeDockerArchive writes the docker-archive format (`docker load`,
// skopeo's docker-archive:) with the -t names as RepoTags.
func writeDockerArchive(img v1.Image, out Output) error {
	refs := map[name.Reference]v1.Image{}
	for _, n := range out.Names {
		ref, err := name.ParseReference(StoreName(n))
		if err != nil {
			return fmt.Errorf("type=docker: %w", err)
		}
		refs[ref] = img
	}
	return out.writeFile(func(w io.Writer) error {
		if len(refs) == 0 {
			return tarball.Write(nil, img, w)
		}
		return tarball.MultiRefWrite(refs, w)
	})
}

// Push writes img to the registry under every name.
func Push(ctx context.Context, img v1.Image, names []string, reg registry.Config) error {
	return push(ctx, img, names, reg, &vertex{sink: progress.Discard})
}

// push pushes under every name, sending v's Transfer and Pushed events.
func push(ctx context.Context, img v1.Image, names []string, reg registry.Config, v *vertex) error {
	return pushAnnotated(ctx, img, names, reg, v, nil)
}

// pushAnnotated is push with the --annotation values: with an index
// (withIndex) the names tag the index, which holds the image.
func pushAnnotated(ctx context.Context, img v1.Image, names []string, reg registry.Config, v *vertex, as []Annotation) error {
	if len(names) == 0 {
		return fmt.Errorf("pushing needs a name (-t)")
	}
	// Layers a registry already holds (a base's, a cache's) are mounted
	// from there, not downloaded and uploaded.
	img, err := mountable(img, reg)
	if err != nil {
		return err
	}
	var top remote.Taggable = img
	wrap, err := withIndex(img, as)
	if err != nil {
		return err
	}
	if wrap != nil {
		top = wrap
	}
	digest, err := top.(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		return err
	}
	return pushNames(ctx, top, digest, names, reg, v)
}

// pushNames pushes top (an image or an index) under each name, one
// meter and one Pushed event per name.
func pushNames(ctx context.Context, top remote.Taggable, digest v1.Hash, names []string, reg registry.Config, v *vertex) error {
	for _, n := range names {
		ref, err := reg.ParseRef(n)
		if err != nil {
			return err
		}
		m := v.meter("pushing " + n)
		if err := writeRemote(ref, top, reg.RemoteOptions(ctx), m); err != nil {
			return fmt.Errorf("pushing %s: %w", n, err)
		}
		m.done()
		v.sink.Event(progress.Pushed{ID: v.id, Ref: n, Digest: digest.String()})
	}
	return nil
}

// writeRemote is remote.Write (or WriteIndex) with its byte counts
// passed to m.
func writeRemote(ref name.Reference, t remote.Taggable, opts []remote.Option, m *meter) error {
	// go-containerregistry sends an update per read and blocks until it is
	// taken, so every send is over when Write returns; it closes the
	// channel only if its options were valid, so done ends the reader
	// either way.
	updates, done := make(chan v1.Update), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case u, ok := <-updates:
				if !ok {
					return
				}
				if u.Error == nil {
					m.set(u.Complete, u.Total)
				}
			case <-done:
				return
			}
		}
	})
	opts = append(opts, remote.WithProgress(updates))
	var err error
	if idx, ok := t.(v1.ImageIndex); ok {
		err = remote.WriteIndex(ref, idx, opts...)
	} else {
		err = remote.Write(ref, t.(v1.Image), opts...)
	}
	close(done)
	wg.Wait()
	return err
}

// flatten applies the image's layers in order to dir: the root
// filesystem a container would see.
func flatten(ctx context.Context, img v1.Image, dir string, own owners.Policy) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if err := applyLayerWith(ctx, l, dir, layer.ExtractOptions{Mode: layer.Flatten, Owners: own}); err != nil {
			return fmt.Errorf("writing %s: %w", dir, err)
		}
	}
	return nil
}

func applyLayerWith(ctx context.Context, l v1.Layer, dir string, opts layer.ExtractOptions) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = layer.Extract(ctx, rc, dir, opts)
	return err
}

// exportTree writes the image's root filesystem to dir for use on the host
// (-o type=local): owned by the caller, without setuid bits, file
// capabilities or device nodes (see layer.ExtractOptions.Export).
func exportTree(ctx context.Context, img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if err := applyLayerWith(ctx, l, dir, layer.ExtractOptions{Mode: layer.Flatten, Export: true}); err != nil {
			return fmt.Errorf("writing %s: %w", dir, err)
		}
	}
	return nil
}

// writeRootfsTar writes the flattened root filesystem as one tar.
func writeRootfsTar(ctx context.Context, img v1.Image, out Output) error {
	tmpBase := filepath.Dir(out.Dest)
	if out.Dest == "-" {
		tmpBase = ""
	}
	dir, err := os.MkdirTemp(tmpBase, ".rootfs-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", out.Dest, err)
	}
	defer os.RemoveAll(dir)
	if err := flatten(ctx, img, dir, out.Owners); err != nil {
		return err
	}
	return out.writeFile(func(w io.Writer) error {
		return layer.WriteTar(ctx, w, dir, layer.WriteOptions{Source: layer.FromDir, Owners: out.Owners})
	})
}
