package store

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/layer"
)

// oneFileLayer is a gzip OCI layer holding one file.
func oneFileLayer(t *testing.T, path, content string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// multiPlatform is an OCI index of a linux/amd64 and a linux/arm64 image
// sharing a layer, and an attestation manifest (in-toto layer, platform
// unknown/unknown) as BuildKit adds one.
func multiPlatform(t *testing.T, archs ...string) v1.ImageIndex {
	t.Helper()
	if len(archs) == 0 {
		archs = []string{"amd64", "arm64"}
	}
	shared := oneFileLayer(t, "shared", "both")
	var adds []mutate.IndexAddendum
	for _, arch := range archs {
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err := mutate.AppendLayers(img, shared, oneFileLayer(t, "arch", arch))
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	att := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	att, err := mutate.AppendLayers(att, static.NewLayer([]byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`), "application/vnd.in-toto+json"))
	if err != nil {
		t.Fatal(err)
	}
	adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
	}})
	return mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
}

// indexBlobs are the digests of every blob of idx: itself, its manifests,
// their configs and layers.
func indexBlobs(t *testing.T, idx v1.ImageIndex) []v1.Hash {
	t.Helper()
	h, _ := idx.Digest()
	out := []v1.Hash{h}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		out = append(out, d.Digest, m.Config.Digest)
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
	}
	return out
}

// layoutOf writes idx to a new OCI layout directory named name.
func layoutOf(t *testing.T, idx v1.ImageIndex, name string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1"})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadIndexed loads idx into a new store, tagged example.com/multi:1.
func loadIndexed(t *testing.T, idx v1.ImageIndex) *Store {
	t.Helper()
	s := openStore(t)
	got, err := s.Load(context.Background(), layoutOf(t, idx, "example.com/multi:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if len(got) != 1 || got[0].Desc.Digest != want || got[0].Desc.MediaType != types.OCIImageIndex || len(got[0].Names) != 1 {
		t.Fatalf("Load = %+v, want the index %s named example.com/multi:1", got, want)
	}
	if err := s.Tag(got[0].Names[0], got[0].Desc); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLoadIndex: an archive or layout of several platforms loads whole:
// the index keeps its digest and every child, attestations included, is
// stored; from a tar the same.
func TestLoadIndex(t *testing.T) {
	idx := multiPlatform(t)
	s := loadIndexed(t, idx)
	for _, h := range indexBlobs(t, idx) {
		if ok, _ := s.HasBlob(h); !ok {
			t.Errorf("blob %s not loaded", h)
		}
	}
	s2 := openStore(t)
	got, err := s2.Load(context.Background(), "-", bytes.NewReader(tarOf(t, layoutOf(t, idx, "example.com/multi:1"))))
	if want, _ := idx.Digest(); err != nil || len(got) != 1 || got[0].Desc.Digest != want {
		t.Errorf("Load of the archive: %+v, %v", got, err)
	}

	// One platform and its attestation: the image, as before.
	one := multiPlatform(t, "amd64")
	got, err = openStore(t).Load(context.Background(), layoutOf(t, one, "example.com/one:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := one.IndexManifest()
	if len(got) != 1 || got[0].Desc.Digest != im.Manifests[0].Digest || got[0].Desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("Load of a one-platform index: %+v, want its image %s", got, im.Manifests[0].Digest)
	}
}

// TestLoadPartialIndex: an archive lacking some platforms' manifests (a
// docker save of an image pulled for one platform) loads this machine's
// image, as before, rather than fail or keep an index it cannot push.
func TestLoadPartialIndex(t *testing.T) {
	idx := multiPlatform(t, runtime.GOARCH, "s390x")
	dir := layoutOf(t, idx, "example.com/multi:1")
	im, _ := idx.IndexManifest()
	if err := os.Remove(filepath.Join(dir, "blobs", "sha256", im.Manifests[1].Digest.Hex)); err != nil {
		t.Fatal(err)
	}
	got, err := openStore(t).Load(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Desc.Digest != im.Manifests[0].Digest {
		t.Errorf("Load = %+v, want the %s image %s", got, runtime.GOARCH, im.Manifests[0].Digest)
	}
}

// TestLoadIndexVerified: a child blob whose bytes are not its digest
// fails the load, naming it, and nothing is tagged.
func TestLoadIndexVerified(t *testing.T) {
	idx := multiPlatform(t)
	dir := layoutOf(t, idx, "example.com/multi:1")
	im, _ := idx.IndexManifest()
	img, _ := idx.Image(im.Manifests[1].Digest)
	m, _ := img.Manifest()
	victim := filepath.Join(dir, "blobs", "sha256", m.Layers[1].Digest.Hex)
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	_, err = s.Load(context.Background(), dir, nil)
	if err == nil || !strings.Contains(err.Error(), m.Layers[1].Digest.Hex) {
		t.Errorf("Load with a corrupt layer of the arm64 image: %v, want an error naming it", err)
	}
	if idxm, _ := s.Index(); len(idxm.Manifests) != 0 {
		t.Errorf("tags after a failed load: %v", idxm.Manifests)
	}
}

// TestPruneKeepsIndex: a blob reachable only through a tagged index (a
// platform's manifest, config or layer, an attestation's statement) is
// never pruned, by any option; the snapshots of its layers stay without
// --all. Untagged, it all goes.
func TestPruneKeepsIndex(t *testing.T) {
	idx := multiPlatform(t)
	s := loadIndexed(t, idx)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"loose": strings.Repeat("l", 2000)})
	loose := writeLayer(t, s, dir, layer.WriteOptions{})
	im, _ := idx.IndexManifest()
	img, _ := idx.Image(im.Manifests[1].Digest)
	ls, _ := img.Layers()
	d, _ := ls[1].Digest()
	diffID, _ := ls[1].DiffID()
	sz, _ := ls[1].Size()
	l, err := s.Layer(v1.Descriptor{MediaType: types.OCILayer, Digest: d, Size: sz}, diffID)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(context.Background(), l, layer.ExtractOptions{Owners: testOwners()})
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []PruneOptions{{KeepStorage: 1}, {Until: time.Nanosecond}, {}} {
		r, err := s.PruneWith(opts)
		if err != nil {
			t.Fatalf("prune %+v: %v", opts, err)
		}
		for _, h := range indexBlobs(t, idx) {
			if ok, _ := s.HasBlob(h); !ok {
				t.Errorf("prune %+v (%+v) removed %s, which the tagged index holds", opts, r, h)
			}
		}
		if !present(snap) {
			t.Errorf("prune %+v removed the snapshot of the arm64 image's layer", opts)
		}
	}
	if ok, _ := s.HasBlob(loose.Descriptor().Digest); ok {
		t.Error("the untagged blob survived the prunes")
	}
	if _, err := s.PruneWith(PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if present(snap) {
		t.Error("prune --all kept the snapshot")
	}
	if err := s.Untag("example.com/multi:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	for _, h := range indexBlobs(t, idx) {
		if ok, _ := s.HasBlob(h); ok {
			t.Errorf("untagged, %s stayed", h)
		}
	}
}

// TestPruneBrokenIndex: a tagged index whose child manifest is not JSON
// stops prune, which removes nothing rather than guess.
func TestPruneBrokenIndex(t *testing.T) {
	idx := multiPlatform(t)
	s := loadIndexed(t, idx)
	im, _ := idx.IndexManifest()
	p := s.blobPath(im.Manifests[0].Digest)
	if err := os.WriteFile(p, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Prune()
	if err == nil || !strings.Contains(err.Error(), im.Manifests[0].Digest.Hex) {
		t.Errorf("prune with a broken child: %v, want an error naming it", err)
	}
	for _, h := range indexBlobs(t, idx) {
		if ok, _ := s.HasBlob(h); !ok {
			t.Errorf("prune removed %s after failing", h)
		}
	}
}
