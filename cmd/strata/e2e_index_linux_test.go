package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// multiLayout is an OCI layout, as buildx writes one, of a linux/amd64
// and a linux/arm64 image (a shared layer, one of each's own holding
// /arch) and a provenance attestation manifest, named name. It returns
// the layout, the index and the arm64 image's digest.
func multiLayout(t *testing.T, name string) (string, v1.ImageIndex, v1.Hash) {
	t.Helper()
	fileLayer := func(path, content string) v1.Layer {
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
	shared := fileLayer("shared", strings.Repeat("in every platform\n", 200))
	var adds []mutate.IndexAddendum
	var arm v1.Hash
	for _, arch := range []string{"amd64", "arm64"} {
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err := mutate.AppendLayers(img, shared, fileLayer("arch", arch))
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		cf.Config.Cmd = []string{"/arch"}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		if arch == "arm64" {
			arm, _ = img.Digest()
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	att := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	att, err := mutate.AppendLayers(att, static.NewLayer([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2"}`), "application/vnd.in-toto+json"))
	if err != nil {
		t.Fatal(err)
	}
	amd, _ := adds[0].Add.(v1.Image).Digest()
	adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.String()},
	}})
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1"})); err != nil {
		t.Fatal(err)
	}
	return dir, idx, arm
}

// layoutBlobs are the names of a layout's blobs and their total size.
func layoutBlobs(t *testing.T, dir string) ([]string, int64) {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, de.Name())
		total += fi.Size()
	}
	return names, total
}

func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestE2EIndexStore: a multi-platform image (as buildx writes one) goes
// through the store commands whole: load, images, inspect, save, push,
// prune, rmi; skopeo, umoci and Debian's docker-registry read what they
// write.
func TestE2EIndexStore(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the store is root's")
	}
	for _, tool := range []string{"skopeo", "umoci", "docker-registry"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (testdata/install-test-deps.sh)", tool)
		}
	}
	t.Setenv("BUILDKIT_PROGRESS", "quiet")
	const name = "example.com/multi:1"
	src, idx, arm := multiLayout(t, name)
	rawIndex, _ := idx.RawManifest()
	digest, _ := idx.Digest()
	blobs, total := layoutBlobs(t, src)
	st := filepath.Join(t.TempDir(), "store")
	strata := func(args ...string) string {
		t.Helper()
		return mustCLI(t, append(args[:1:1], append([]string{"--root", st}, args[1:]...)...)...)
	}

	if out := strata("load", "-i", src); out != "Loaded image: "+name+"\n" {
		t.Errorf("load printed %q", out)
	}
	// One row, the index's digest; its size every blob the layout holds.
	if out := strata("images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}} {{.Size}}"); out != name+" "+digest.String()+" "+humanSizePrec(total, 3)+"\n" {
		t.Errorf("images: %q, want %s %s %s", out, name, digest, humanSizePrec(total, 3))
	}
	if out := strata("images", "--digests"); !strings.Contains(out, digest.String()) || strings.Count(out, "\n") != 2 {
		t.Errorf("images --digests:\n%s", out)
	}

	var insp []struct {
		Id        string
		MediaType string
		Manifests []struct{ Digest, Platform string }
	}
	if err := json.Unmarshal([]byte(strata("inspect", name)), &insp); err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, m := range insp[0].Manifests {
		plats = append(plats, m.Platform)
	}
	if len(insp) != 1 || insp[0].Id != digest.String() || insp[0].MediaType != string(types.OCIImageIndex) || !slices.Equal(plats, []string{"linux/amd64", "linux/arm64", "unknown/unknown"}) {
		t.Errorf("inspect: %+v", insp)
	}
	if out := strata("inspect", "--platform", "linux/arm64", "-f", "{{.Id}} {{.Architecture}}", name); out != arm.String()+" arm64\n" {
		t.Errorf("inspect --platform linux/arm64: %q, want %s arm64", out, arm)
	}

	dir := t.TempDir()
	archive := filepath.Join(dir, "multi.tar")
	strata("save", name, "-o", archive)
	if got := skopeo(t, "inspect", "--raw", "oci-archive:"+archive); got != string(rawIndex) {
		t.Errorf("save: skopeo inspect --raw shows %s, want the index", got)
	}
	lay := filepath.Join(dir, "arm64")
	skopeo(t, "copy", "--quiet", "--override-arch", "arm64", "oci-archive:"+archive, "oci:"+lay+":arm64")
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", lay+":arm64", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "arch")); err != nil || string(got) != "arm64" {
		t.Errorf("the saved arm64 image's /arch: %q, %v", got, err)
	}
	docker := filepath.Join(dir, "docker.tar")
	_, err := cli(t, nil, io.Discard, "save", "--root", st, name, "-o", docker, "--format", "docker")
	if err == nil || !strings.Contains(err.Error(), "save --format docker: the image has 2 platforms (linux/amd64, linux/arm64)") || !strings.HasSuffix(err.Error(), "--format oci, or push it") || strings.Contains(err.Error(), "\n") {
		t.Errorf("save --format docker of two platforms: %v", err)
	}
	if _, err := os.Stat(docker); err == nil {
		t.Error("save --format docker refused, yet it wrote the archive")
	}

	reg, _ := startRegistry(t, t.TempDir())
	ref := reg + "/e2e/multi:1"
	if out := strata("push", "--insecure-registry", reg, name, ref); out != digest.String()+"\n" {
		t.Errorf("push printed %q, want %s", out, digest)
	}
	if got := skopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+ref); got != string(rawIndex) {
		t.Errorf("pushed index: %s", got)
	}
	var pushed struct {
		Architecture string
		Layers       []string
	}
	if err := json.Unmarshal([]byte(skopeo(t, "inspect", "--tls-verify=false", "--override-arch", "arm64", "docker://"+ref)), &pushed); err != nil {
		t.Fatal(err)
	}
	if pushed.Architecture != "arm64" || len(pushed.Layers) != 2 {
		t.Errorf("the pushed arm64 image: %+v", pushed)
	}
	skopeo(t, "copy", "--quiet", "--all", "--src-tls-verify=false", "docker://"+ref, "oci:"+filepath.Join(dir, "pulled")+":all")
	// skopeo writes the index anew (its own JSON); every other blob is
	// the layout's.
	got, _ := layoutBlobs(t, filepath.Join(dir, "pulled"))
	for _, b := range blobs {
		if b != digest.Hex && !slices.Contains(got, b) {
			t.Errorf("skopeo copy --all from the registry lacks blob %s", b)
		}
	}
	if len(got) != len(blobs) {
		t.Errorf("skopeo copy --all from the registry got %d blobs, the layout has %d", len(got), len(blobs))
	}

	// prune keeps what the index reaches; once untagged, it all goes.
	strata("prune")
	for _, b := range blobs {
		if _, err := os.Stat(filepath.Join(st, "blobs", "sha256", b)); err != nil {
			t.Errorf("prune removed %s of the tagged index", b)
		}
	}
	if out := strata("rmi", name); out != "Untagged: "+name+"\n" {
		t.Errorf("rmi printed %q", out)
	}
	if out := strata("prune"); !strings.HasPrefix(out, fmt.Sprintf("removed %d blobs", len(blobs))) {
		t.Errorf("prune after rmi: %q, want the %d blobs of the index", out, len(blobs))
	}

	// From stdin, as an OCI archive: the index again, with its name.
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if stderr, err := cli(t, f, &out, "load", "--root", st); err != nil || out.String() != "Loaded image: "+name+"\n" {
		t.Errorf("load from stdin: %v %q %s", err, out.String(), stderr)
	}
	if out := strata("images", "--format", "{{.Digest}}"); out != digest.String()+"\n" {
		t.Errorf("after loading the saved archive: %q, want %s", out, digest)
	}
}
