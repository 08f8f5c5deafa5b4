package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// indexFixture is a store holding an index of linux/amd64 and linux/arm64
// images (sharing one layer, each with one of its own) and a BuildKit
// attestation manifest for the amd64 one, tagged example.com/app:1.
type indexFixture struct {
	st         *store.Store
	desc       v1.Descriptor
	raw        []byte
	amd, arm   v1.Hash // the images' manifest digests
	attest     v1.Hash
	sharedBlob v1.Hash
}

// tarLayer is a gzip OCI layer of one file.
func fileLayer(t *testing.T, path, content string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func platformImage(t *testing.T, shared v1.Layer, os, arch, variant string) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, shared, fileLayer(t, "arch", arch+variant))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = os, arch, variant
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// putImage stores img's blobs as the builder stores an image.
func putImage(t *testing.T, st *store.Store, img v1.Image) {
	t.Helper()
	ctx := context.Background()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.PutBlob(ctx, rc, v1.Hash{}); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	for _, f := range []func() ([]byte, error){img.RawConfigFile, img.RawManifest} {
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.PutBlob(ctx, bytes.NewReader(b), v1.Hash{}); err != nil {
			t.Fatal(err)
		}
	}
}

// attestationImage is an attestation manifest as BuildKit writes one: an
// in-toto statement as its layer, platform unknown/unknown.
func attestationImage(t *testing.T) v1.Image {
	t.Helper()
	stmt := static.NewLayer([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2"}`), "application/vnd.in-toto+json")
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{Layer: stmt, Annotations: map[string]string{"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "unknown", "unknown"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func newIndexFixture(t *testing.T, plats ...[3]string) *indexFixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if len(plats) == 0 {
		plats = [][3]string{{"linux", "amd64", ""}, {"linux", "arm64", ""}}
	}
	f := &indexFixture{st: st}
	shared := fileLayer(t, "shared", strings.Repeat("shared by every platform\n", 100))
	f.sharedBlob, _ = shared.Digest()
	var adds []mutate.IndexAddendum
	for _, p := range plats {
		img := platformImage(t, shared, p[0], p[1], p[2])
		putImage(t, st, img)
		h, _ := img.Digest()
		switch p[1] {
		case "amd64":
			f.amd = h
		case "arm64":
			f.arm = h
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p[0], Architecture: p[1], Variant: p[2]}}})
	}
	att := attestationImage(t)
	putImage(t, st, att)
	f.attest, _ = att.Digest()
	first, _ := adds[0].Add.(v1.Image).Digest()
	adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": first.String()},
	}})
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	f.raw, _ = idx.RawManifest()
	h, n, err := st.PutBlob(context.Background(), bytes.NewReader(f.raw), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	f.desc = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: n}
	if err := TagIndex(st, f.desc, []string{"example.com/app:1"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *indexFixture) open(t *testing.T) v1.ImageIndex {
	t.Helper()
	idx, desc, err := OpenIndex(context.Background(), f.st, "example.com/app:1", registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != f.desc.Digest {
		t.Fatalf("OpenIndex: %s, want %s", desc.Digest, f.desc.Digest)
	}
	return idx
}

func needTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed (testdata/install-test-deps.sh)", tool)
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestOpenIndex: a name tagging an index gives its images by platform;
// OpenImage names the platforms instead of guessing one.
func TestOpenIndex(t *testing.T) {
	f := newIndexFixture(t)
	ctx := context.Background()
	_, _, err := OpenImage(ctx, f.st, "example.com/app:1", registry.Config{})
	if err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") || strings.Contains(err.Error(), "unknown") {
		t.Errorf("OpenImage of an index: %v; want an error naming linux/amd64, linux/arm64 (not the attestation)", err)
	}
	img, d, err := OpenPlatformImage(ctx, f.st, "example.com/app:1", &v1.Platform{OS: "linux", Architecture: "arm64"}, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := img.Digest(); h != f.arm || d.Digest != f.arm {
		t.Errorf("linux/arm64: image %s (descriptor %s), want %s", h, d.Digest, f.arm)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("linux/arm64 image: %v", err)
	}
	if _, _, err := OpenPlatformImage(ctx, f.st, "example.com/app:1", &v1.Platform{OS: "linux", Architecture: "s390x"}, registry.Config{}); err == nil || !strings.Contains(err.Error(), "s390x") {
		t.Errorf("linux/s390x: %v, want an error naming it", err)
	}
	idx := f.open(t)
	validateImages(t, "OpenIndex", idx, f.amd, f.arm)
	if raw, _ := idx.RawManifest(); !bytes.Equal(raw, f.raw) {
		t.Error("OpenIndex: the index's JSON is not the stored one")
	}
}

// TestExportIndexOCI: the OCI archive and layout hold the index as
// stored (its digest the image ID), every child whole, the names on the
// index's descriptor; skopeo and umoci read them.
func TestExportIndexOCI(t *testing.T) {
	needTool(t, "skopeo")
	f := newIndexFixture(t)
	dir := t.TempDir()
	ctx := context.Background()
	archive := filepath.Join(dir, "app.tar")
	if err := ExportIndex(ctx, f.open(t), Output{Type: "oci", Dest: archive, Names: []string{"example.com/app:1"}}); err != nil {
		t.Fatal(err)
	}
	// The same index gives the same archive, byte for byte.
	again := filepath.Join(dir, "again.tar")
	if err := ExportIndex(ctx, f.open(t), Output{Type: "oci", Dest: again, Names: []string{"example.com/app:1"}}); err != nil {
		t.Fatal(err)
	}
	if a, b := readFile(t, archive), readFile(t, again); !bytes.Equal(a, b) {
		t.Errorf("two exports of one index differ (%d and %d bytes)", len(a), len(b))
	}
	if got := run(t, "skopeo", "inspect", "--raw", "oci-archive:"+archive); !bytes.Equal(got, f.raw) {
		t.Errorf("skopeo inspect --raw: %s\nwant the stored index %s", got, f.raw)
	}
	var insp struct {
		Digest       string
		Architecture string
		Layers       []string
	}
	if err := json.Unmarshal(run(t, "skopeo", "inspect", "--override-arch", "arm64", "oci-archive:"+archive), &insp); err != nil {
		t.Fatal(err)
	}
	// skopeo's Digest is the reference's: the index.
	if insp.Architecture != "arm64" || insp.Digest != f.desc.Digest.String() || !slices.Contains(insp.Layers, armLayer(t, f).String()) {
		t.Errorf("skopeo inspect --override-arch arm64: %+v, want arm64 with its own layer", insp)
	}
	copied := filepath.Join(dir, "copied")
	run(t, "skopeo", "copy", "--override-arch", "arm64", "oci-archive:"+archive, "dir:"+copied)
	m, err := os.ReadFile(filepath.Join(copied, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(m)); h != f.arm {
		t.Errorf("skopeo copy: manifest %s, want the arm64 image's %s", h, f.arm)
	}
	if _, err := os.Stat(filepath.Join(copied, f.sharedBlob.Hex)); err != nil {
		t.Errorf("skopeo copy: shared layer missing: %v", err)
	}
	top := archiveIndexJSON(t, archive)
	if len(top.Manifests) != 1 || top.Manifests[0].Digest != f.desc.Digest || top.Manifests[0].MediaType != types.OCIImageIndex ||
		top.Manifests[0].Annotations["io.containerd.image.name"] != "example.com/app:1" || top.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "1" {
		t.Errorf("index.json: %+v; want the index named example.com/app:1", top.Manifests)
	}
	// Every blob once: two manifests and configs, the attestation's three
	// blobs, three layers, the index.
	if n := countBlobs(t, archive); n != 2*2+3+3+1 {
		t.Errorf("archive holds %d blobs, want 11 (the shared layer once)", n)
	}

	layoutDir := filepath.Join(dir, "layout")
	if err := ExportIndex(ctx, f.open(t), Output{Type: "oci-layout", Dest: layoutDir, Names: []string{"example.com/app:1"}}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, "skopeo", "inspect", "--raw", "oci:"+layoutDir+":1"); !bytes.Equal(got, f.raw) {
		t.Errorf("oci-layout: skopeo inspect --raw: %s", got)
	}
	if _, err := exec.LookPath("umoci"); err == nil && os.Geteuid() == 0 {
		// umoci unpacks a manifest: one of the index's, tagged by digest
		// in index.json as any layout may list it.
		tagManifest(t, layoutDir, f.arm, "arm64")
		bundle := filepath.Join(dir, "bundle")
		run(t, "umoci", "unpack", "--image", layoutDir+":arm64", bundle)
		if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "arch")); err != nil || string(got) != "arm64" {
			t.Errorf("umoci unpack of the arm64 image: /arch %q, %v", got, err)
		}
	}
}

// validateImages checks idx's images hs (go-containerregistry's
// validate: digests, sizes, diffIDs); an attestation's in-toto blob is
// read whole, as validate takes only tar layers.
func validateImages(t *testing.T, what string, idx v1.ImageIndex, hs ...v1.Hash) {
	t.Helper()
	for _, h := range hs {
		img, err := idx.Image(h)
		if err != nil {
			t.Errorf("%s: image %s: %v", what, h, err)
			continue
		}
		if h2, _ := img.Digest(); h2 != h {
			t.Errorf("%s: image %s has digest %s", what, h, h2)
		}
		ls, err := img.Layers()
		if err != nil || len(ls) == 0 {
			t.Errorf("%s: image %s: %d layers, %v", what, h, len(ls), err)
			continue
		}
		if mt, _ := ls[0].MediaType(); mt == "application/vnd.in-toto+json" {
			rc, err := ls[0].Compressed()
			if err != nil {
				t.Errorf("%s: attestation %s: %v", what, h, err)
				continue
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !strings.Contains(string(b), "in-toto") {
				t.Errorf("%s: attestation %s holds %q", what, h, b)
			}
			continue
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: image %s: %v", what, h, err)
		}
	}
}

// armLayer is the arm64 image's own layer.
func armLayer(t *testing.T, f *indexFixture) v1.Hash {
	t.Helper()
	img, err := f.open(t).Image(f.arm)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[1].Digest
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tagManifest adds digest's descriptor to the layout's index.json under
// ref (how umoci, which reads no index, is pointed at a platform).
func tagManifest(t *testing.T, dir string, digest v1.Hash, ref string) {
	t.Helper()
	p := filepath.Join(dir, "index.json")
	var idx v1.IndexManifest
	b, err := os.ReadFile(p)
	if err != nil || json.Unmarshal(b, &idx) != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	blob, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", digest.Hex))
	if err != nil {
		t.Fatal(err)
	}
	idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: digest, Size: int64(len(blob)),
		Annotations: map[string]string{"org.opencontainers.image.ref.name": ref}})
	b, _ = json.Marshal(idx)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func archiveIndexJSON(t *testing.T, archive string) v1.IndexManifest {
	t.Helper()
	var idx v1.IndexManifest
	forEachMember(t, archive, func(h *tar.Header, r io.Reader) {
		if h.Name == "index.json" {
			if err := json.NewDecoder(r).Decode(&idx); err != nil {
				t.Fatal(err)
			}
		}
	})
	return idx
}

func countBlobs(t *testing.T, archive string) int {
	t.Helper()
	n, names := 0, map[string]bool{}
	forEachMember(t, archive, func(h *tar.Header, _ io.Reader) {
		if strings.HasPrefix(h.Name, "blobs/sha256/") && h.Typeflag == tar.TypeReg {
			if names[h.Name] {
				t.Errorf("%s written twice", h.Name)
			}
			names[h.Name] = true
			n++
		}
	})
	return n
}

func forEachMember(t *testing.T, archive string, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(h, tr)
	}
}

// TestExportIndexAnnotations: --annotation values land where buildx puts
// them: index on the index, index-descriptor on index.json's entry,
// manifest-descriptor[platform] on that platform's entry only.
func TestExportIndexAnnotations(t *testing.T) {
	needTool(t, "skopeo")
	f := newIndexFixture(t)
	var as []Annotation
	for _, s := range []string{"index:org.opencontainers.image.title=app", "index-descriptor:com.example.where=desc",
		"manifest-descriptor[linux/arm64]:com.example.arch=arm"} {
		a, err := ParseAnnotation(s)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a...)
	}
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := ExportIndex(context.Background(), f.open(t), Output{Type: "oci", Dest: archive, Names: []string{"example.com/app:1"}, Annotations: as}); err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(run(t, "skopeo", "inspect", "--raw", "oci-archive:"+archive), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Annotations["org.opencontainers.image.title"] != "app" {
		t.Errorf("index annotations %v, want the title", idx.Annotations)
	}
	for _, d := range idx.Manifests {
		want := ""
		if d.Digest == f.arm {
			want = "arm"
		}
		if got := d.Annotations["com.example.arch"]; got != want {
			t.Errorf("%s (%s): com.example.arch %q, want %q", d.Digest, d.Platform, got, want)
		}
	}
	top := archiveIndexJSON(t, archive)
	if a := top.Manifests[0].Annotations; a["com.example.where"] != "desc" || a["io.containerd.image.name"] != "example.com/app:1" {
		t.Errorf("index.json's descriptor: %v", a)
	}
	if _, err := ParseAnnotation("manifest-descriptor[linux/s390x]:k=v"); err == nil {
		a, _ := ParseAnnotation("manifest-descriptor[linux/s390x]:k=v")
		err := ExportIndex(context.Background(), f.open(t), Output{Type: "oci", Dest: archive, Annotations: a})
		if err == nil || !strings.Contains(err.Error(), "linux/s390x") {
			t.Errorf("an annotation for a platform the index lacks: %v", err)
		}
	}
}

// TestExportIndexSplit: type=local and type=tar write a directory per
// platform, named as buildx names them, and nothing for the attestation.
func TestExportIndexSplit(t *testing.T) {
	f := newIndexFixture(t, [3]string{"linux", "amd64", ""}, [3]string{"linux", "arm64", ""}, [3]string{"linux", "arm", "v7"})
	dir := t.TempDir()
	ctx := context.Background()
	local := filepath.Join(dir, "local")
	if err := ExportIndex(ctx, f.open(t), Output{Type: "local", Dest: local}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(local)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if want := []string{"linux_amd64", "linux_arm64", "linux_arm_v7"}; !slices.Equal(got, want) {
		t.Errorf("type=local wrote %v, want %v", got, want)
	}
	for p, want := range map[string]string{"linux_amd64/arch": "amd64", "linux_arm_v7/arch": "armv7", "linux_arm64/shared": strings.Repeat("shared by every platform\n", 100)} {
		if b, err := os.ReadFile(filepath.Join(local, p)); err != nil || string(b) != want {
			t.Errorf("type=local: %s = %.20q, %v; want %.20q", p, b, err, want)
		}
	}
	tarPath := filepath.Join(dir, "rootfs.tar")
	if err := ExportIndex(ctx, f.open(t), Output{Type: "tar", Dest: tarPath}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	forEachMember(t, tarPath, func(h *tar.Header, r io.Reader) {
		b, _ := io.ReadAll(r)
		files[h.Name] = string(b)
	})
	for _, p := range []string{"linux_amd64/", "linux_arm64/", "linux_arm_v7/"} {
		if _, ok := files[p]; !ok {
			t.Errorf("type=tar: no %s in %v", p, slices.Sorted(mapKeys(files)))
		}
	}
	if files["linux_arm64/arch"] != "arm64" || len(files) != 9 {
		t.Errorf("type=tar: %v, want three directories of arch and shared", slices.Sorted(mapKeys(files)))
	}

	// One platform (and its attestation): its root filesystem itself, as
	// buildx splits only several.
	one := newIndexFixture(t, [3]string{"linux", "arm64", ""})
	single := filepath.Join(dir, "single")
	if err := ExportIndex(ctx, one.open(t), Output{Type: "local", Dest: single}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(single, "arch")); err != nil || string(b) != "arm64" {
		t.Errorf("type=local of one platform: /arch %q, %v", b, err)
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestExportIndexDocker: a docker archive of several platforms is refused
// before anything is written; of one platform with its attestation, it is
// that platform's image.
func TestExportIndexDocker(t *testing.T) {
	f := newIndexFixture(t)
	dest := filepath.Join(t.TempDir(), "docker.tar")
	err := ExportIndex(context.Background(), f.open(t), Output{Type: "docker", Dest: dest, Names: []string{"app:1"}})
	if err == nil || !strings.Contains(err.Error(), "-o type=docker: the image has 2 platforms (linux/amd64, linux/arm64)") || strings.Contains(err.Error(), "\n") {
		t.Errorf("type=docker of two platforms: %v", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("type=docker refused, yet %s exists: %v", dest, err)
	}
	one := newIndexFixture(t, [3]string{"linux", "arm64", ""})
	if err := ExportIndex(context.Background(), one.open(t), Output{Type: "docker", Dest: dest, Names: []string{"app:1"}}); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("app:1")
	img, err := tarball.ImageFromPath(dest, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Architecture != "arm64" {
		t.Errorf("docker archive: %v, %v; want the arm64 image", cf, err)
	}
	if ls, _ := img.Layers(); len(ls) != 2 {
		t.Errorf("docker archive: %d layers, want the image's 2", len(ls))
	}
}

// uploadCounter is an in-process registry counting the blob uploads of
// each digest.
type uploadCounter struct {
	mu      sync.Mutex
	uploads map[string]int
}

func countingUploads(t *testing.T) (string, *uploadCounter) {
	c := &uploadCounter{uploads: map[string]int{}}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			c.mu.Lock()
			c.uploads[r.URL.Query().Get("digest")]++
			c.mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), c
}

// TestExportIndexRegistry: every child, then the index under each name;
// the layer both platforms share uploaded once.
func TestExportIndexRegistry(t *testing.T) {
	f := newIndexFixture(t)
	host, c := countingUploads(t)
	names := []string{host + "/app:1", host + "/app:latest"}
	if err := ExportIndex(context.Background(), f.open(t), Output{Type: "registry", Names: names}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		ref, _ := name.ParseReference(n, name.Insecure)
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if h, _ := idx.Digest(); h != f.desc.Digest {
			t.Errorf("%s: %s, want the index %s", n, h, f.desc.Digest)
		}
		validateImages(t, n, idx, f.amd, f.arm, f.attest)
	}
	if n := c.uploads[f.sharedBlob.String()]; n != 1 {
		t.Errorf("the shared layer was uploaded %d times, want once (uploads %v)", n, c.uploads)
	}
}

// TestExportIndexEvents: an index's export is one vertex, as an image's:
// named as BuildKit's exporter, the bytes written or pushed, then where
// the index went (the registry's event carrying the index digest).
func TestExportIndexEvents(t *testing.T) {
	f := newIndexFixture(t)
	host, _ := countingUploads(t)
	ref := host + "/app:1"
	dest := filepath.Join(t.TempDir(), "app.tar")
	for _, c := range []struct {
		out  Output
		name string
		last progress.Event
	}{
		{Output{Type: "oci", Dest: dest}, "exporting to oci image format", progress.Exported{Type: "oci", Dest: dest}},
		{Output{Type: "registry", Names: []string{ref}}, "exporting to image", progress.Pushed{Ref: ref, Digest: f.desc.Digest.String()}},
	} {
		var rec recorder
		c.out.Progress = &rec
		if err := ExportIndex(context.Background(), f.open(t), c.out); err != nil {
			t.Fatal(err)
		}
		got := rec.all()
		if len(got) < 4 {
			t.Fatalf("%s: events %+v", c.out.Type, got)
		}
		start, ok := got[0].(progress.VertexStarted)
		if !ok || start.Name != c.name {
			t.Errorf("%s: first event %+v, want a vertex %q", c.out.Type, got[0], c.name)
		}
		if tr, ok := got[len(got)-3].(progress.Transfer); !ok || !tr.Done || tr.Current == 0 || tr.ID != start.ID {
			t.Errorf("%s: last transfer %+v", c.out.Type, got[len(got)-3])
		}
		switch e := got[len(got)-2].(type) {
		case progress.Exported:
			e.ID = ""
			if e != c.last {
				t.Errorf("%s: %+v, want %+v", c.out.Type, e, c.last)
			}
		case progress.Pushed:
			e.ID = ""
			if e != c.last {
				t.Errorf("%s: %+v, want %+v", c.out.Type, e, c.last)
			}
		default:
			t.Errorf("%s: second last event %+v", c.out.Type, e)
		}
		if d, ok := got[len(got)-1].(progress.VertexDone); !ok || d.ID != start.ID {
			t.Errorf("%s: last event %+v", c.out.Type, got[len(got)-1])
		}
	}
}
