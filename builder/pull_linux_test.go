package builder

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fixedImage is a one-layer image holding /etc/os-release with content.
func fixedImage(t *testing.T, content, arch string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg.Architecture, cfg.OS = arch, "linux"
	cfg.Config.Env = []string{"FROM_BASE=1"}
	cfg.Config.OnBuild = []string{"ENV TRIGGERED=yes"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// countingRegistry is ggcr's in-process registry counting blob fetches.
func countingRegistry(t *testing.T) (string, *atomic.Int32) {
	var blobs atomic.Int32
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobs.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &blobs
}

func pushIndex(t *testing.T, ref string, imgs ...v1.Image) {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cfg, _ := img.ConfigFile()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: cfg.Architecture}}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

func TestPullBase(t *testing.T) {
	host, blobs := countingRegistry(t)
	mine := fixedImage(t, "ID=mine\n", runtime.GOARCH)
	pushIndex(t, host+"/base:1", fixedImage(t, "ID=other\n", "s390x"), mine)
	tb := newTestBuild(t, baseFiles)
	src := "FROM " + host + "/base:1\nCOPY one.txt /one\n"
	res, _ := tb.mustBuild(src)
	if got, err := readImageFile(t, res, "etc/os-release"); err != nil || got != "ID=mine\n" {
		t.Errorf("os-release %q, %v: want the host platform's image", got, err)
	}
	baseLayers, _ := mine.Layers()
	baseDigest, _ := baseLayers[0].Digest()
	layers, _ := res.Image.Layers()
	if d, _ := layers[0].Digest(); d != baseDigest {
		t.Errorf("base layer %s, want %s reused byte for byte", d, baseDigest)
	}
	cfg := configOf(t, res.Image)
	if env := strings.Join(cfg.Config.Env, " "); !strings.Contains(env, "FROM_BASE=1") || !strings.Contains(env, "TRIGGERED=yes") || !strings.Contains(env, "PATH=") {
		t.Errorf("env %q: want the base's, the trigger's and PATH", env)
	}
	pulled := blobs.Load()
	second, out := tb.mustBuild(src)
	if blobs.Load() != pulled {
		t.Errorf("second build fetched %d blobs again", blobs.Load()-pulled)
	}
	if second.Descriptor.Digest != res.Descriptor.Digest || !strings.Contains(out, "CACHED") {
		t.Errorf("second build not served from the cache:\n%s", out)
	}
}

func TestBaseFromStoreAndMissingTag(t *testing.T) {
	host, _ := countingRegistry(t)
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile)
	if err := Tag(tb.store, res, []string{"local/base"}); err != nil {
		t.Fatal(err)
	}
	child, _ := tb.mustBuild("FROM local/base\nCOPY one.txt /one\n")
	if got, err := readImageFile(t, child, "real/keep"); err != nil || got != "kept" {
		t.Errorf("base from the store: %q, %v", got, err)
	}
	_, _, err := tb.build("FROM " + host + "/nothing:1\n")
	if err == nil || !strings.Contains(err.Error(), "Dockerfile:1: pulling "+host+"/nothing:1") || !strings.Contains(err.Error(), "manifests/1") {
		t.Errorf("error %v, want the missing tag named", err)
	}
}
