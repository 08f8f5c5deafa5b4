package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/layer"
)

func mustDigest(t *testing.T, l *layer.Layer) v1.Hash {
	t.Helper()
	h, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustDiffID(t *testing.T, l *layer.Layer) v1.Hash {
	t.Helper()
	h, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStoreIsAnOCILayout(t *testing.T) {
	s := openStore(t)
	layout, err := os.ReadFile(filepath.Join(s.Root(), ocispec.ImageLayoutFile))
	if err != nil || !strings.Contains(string(layout), `"imageLayoutVersion":"1.0.0"`) {
		t.Fatalf("oci-layout: %q, %v", layout, err)
	}
	idx, err := s.Index()
	if err != nil || idx.SchemaVersion != 2 || len(idx.Manifests) != 0 {
		t.Fatalf("fresh index %+v, %v", idx, err)
	}
}

// TestStoreServesSkopeo tags images in the store and reads them
// with skopeo (all compressions) as a user of --root would.
func TestStoreServesSkopeo(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed (testdata/install-test-deps.sh installs it)")
	}
	tree := t.TempDir()
	smallTree(t, tree)
	s := openStore(t)
	for _, c := range compressions {
		l := writeLayer(t, s, tree, layer.WriteOptions{Compression: c})
		img := tagImage(t, s, "img:"+string(c), l)
		want, _ := img.Digest()
		out, err := exec.Command("skopeo", "inspect", "--format", "{{.Digest}} {{.Layers}}", "oci:"+s.Root()+":img:"+string(c)).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect: %v\n%s", err, out)
		}
		if got := string(out); !strings.Contains(got, want.String()) || !strings.Contains(got, mustDigest(t, l).String()) {
			t.Errorf("skopeo sees %q, want image %s with layer %s", got, want, mustDigest(t, l))
		}
		dst := filepath.Join(t.TempDir(), "copy")
		if out, err := exec.Command("skopeo", "copy", "oci:"+s.Root()+":img:"+string(c), "oci:"+dst+":x").CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
	}
}

func TestTagReplacesAndResolves(t *testing.T) {
	s := openStore(t)
	tree := t.TempDir()
	writeTree(t, tree, map[string]string{"f": "1"})
	first := tagImage(t, s, "app", writeLayer(t, s, tree, layer.WriteOptions{}))
	os.WriteFile(filepath.Join(tree, "f"), []byte("2"), 0o644)
	second := tagImage(t, s, "app", writeLayer(t, s, tree, layer.WriteOptions{}))
	d, err := s.Resolve("app")
	h1, _ := first.Digest()
	h2, _ := second.Digest()
	if err != nil || d.Digest != h2 || h1 == h2 {
		t.Fatalf("Resolve(app) = %v, %v; want %s", d.Digest, err, h2)
	}
	idx, _ := s.Index()
	if len(idx.Manifests) != 1 {
		t.Errorf("index holds %d manifests after retagging, want 1", len(idx.Manifests))
	}
	if err := s.Untag("app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve after Untag: %v, want ErrNotFound", err)
	}
	if err := s.Tag("ghost", v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}}); err == nil {
		t.Error("tagging a manifest that is not stored succeeded")
	}
}

// TestConcurrentStores: builds sharing one root lose no tag and write
// each blob and snapshot whole.
func TestConcurrentStores(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	tree := t.TempDir()
	smallTree(t, tree)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- concurrentBuild(root, tree, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	idx, _ := s.Index()
	if len(idx.Manifests) != 8 {
		t.Errorf("index holds %d tags, want 8", len(idx.Manifests))
	}
	left, _ := os.ReadDir(filepath.Join(root, "tmp"))
	if len(left) != 2 { // this test's own session and its lock
		t.Errorf("tmp holds %d entries after all stores closed", len(left))
	}
}

func concurrentBuild(root, tree string, i int) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	defer s.Close()
	l, err := s.WriteLayer(context.Background(), tree, layer.WriteOptions{Compression: layer.Zstd})
	if err != nil {
		return err
	}
	opts := layer.ExtractOptions{Owners: testOwners()}
	if _, err := s.Snapshot(context.Background(), l, opts); err != nil {
		return err
	}
	raw := []byte(fmt.Sprintf(`{"n":%d}`, i))
	h, n, err := s.PutBlob(context.Background(), strings.NewReader(string(raw)), v1.Hash{})
	if err != nil {
		return err
	}
	return s.Tag(fmt.Sprintf("t%d", i), v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: h, Size: n})
}

// TestOpenCleansDeadSessions simulates a build killed mid-write: its
// temporary files go on the next Open, a live session's stay.
func TestOpenCleansDeadSessions(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	live, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	liveTmp, _ := live.tempFile("layer")
	liveTmp.Close()
	dead := filepath.Join(root, "tmp", "deadbeef")
	os.MkdirAll(dead, 0o700)
	os.WriteFile(dead+".lock", nil, 0o644)
	os.WriteFile(filepath.Join(dead, "layer-123"), []byte("half a blob"), 0o644)
	orphan := filepath.Join(root, "tmp", "orphan")
	os.MkdirAll(orphan, 0o700)
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, p := range []string{dead, dead + ".lock", orphan} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
	if _, err := os.Stat(liveTmp.Name()); err != nil {
		t.Errorf("Open removed a live session's file: %v", err)
	}
}

func TestPutBlobVerifiesDigest(t *testing.T) {
	s := openStore(t)
	want := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	if _, _, err := s.PutBlob(context.Background(), strings.NewReader("data"), want); err == nil {
		t.Fatal("PutBlob stored content with the wrong digest")
	}
	if ok, _ := s.HasBlob(want); ok {
		t.Error("a blob with the wrong content exists")
	}
	for _, bad := range []v1.Hash{{Algorithm: "sha256", Hex: "../../etc"}, {Algorithm: "md5", Hex: strings.Repeat("a", 32)}} {
		if _, err := s.BlobPath(bad); err == nil {
			t.Errorf("BlobPath accepted %s", bad)
		}
	}
	entries, _ := os.ReadDir(s.session)
	if len(entries) != 0 {
		t.Errorf("failed writes left %d temporary files", len(entries))
	}
}

func TestLayerFromStoreValidates(t *testing.T) {
	s := openStore(t)
	tree := t.TempDir()
	smallTree(t, tree)
	written := writeLayer(t, s, tree, layer.WriteOptions{Compression: layer.Gzip})
	l, err := s.Layer(written.Descriptor(), mustDiffID(t, written))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Layer(l); err != nil {
		t.Errorf("stored layer does not validate: %v", err)
	}
	bad := written.Descriptor()
	bad.Size++
	if _, err := s.Layer(bad, mustDiffID(t, written)); err == nil {
		t.Error("a descriptor with the wrong size was accepted")
	}
}

func TestSnapshotVerifiesDiffID(t *testing.T) {
	s := openStore(t)
	tree := t.TempDir()
	writeTree(t, tree, map[string]string{"f": "x"})
	l := writeLayer(t, s, tree, layer.WriteOptions{})
	forgedID := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	forged, err := s.Layer(l.Descriptor(), forgedID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(context.Background(), forged, layer.ExtractOptions{Owners: owners.Recorded}); err == nil {
		t.Fatal("a layer whose content does not match its diffID became a snapshot")
	}
	if p, _ := s.SnapshotPath(forgedID); exists(p) {
		t.Error("the rejected snapshot exists")
	}
	p, err := s.Snapshot(context.Background(), l, layer.ExtractOptions{Owners: owners.Recorded})
	if data, _ := os.ReadFile(filepath.Join(p, "f")); err != nil || string(data) != "x" {
		t.Errorf("snapshot: %v, f=%q", err, data)
	}
}

func TestCache(t *testing.T) {
	s := openStore(t)
	if _, err := s.CacheGet("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty cache: %v", err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := s.CachePut("k", []byte(v)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.CacheGet("k"); err != nil || string(got) != v {
			t.Errorf("CacheGet = %q, %v; want %q", got, err, v)
		}
	}
	if err := s.CacheDelete("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CacheGet("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}
