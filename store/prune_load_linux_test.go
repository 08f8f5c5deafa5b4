package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata/layer"
)

// pruneFixture is a store with a tagged image, two untagged layers used
// 3h and 1h ago, and a cache mount of 5000 bytes used 2h ago.
type pruneFixture struct {
	s                *Store
	tagged, old, new *layer.Layer
	mount, mountUsed string
	oldSize, newSize int64
	now              time.Time
}

func newPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	f := &pruneFixture{s: openStore(t), now: time.Now()}
	mk := func(files map[string]string) *layer.Layer {
		dir := t.TempDir()
		writeTree(t, dir, files)
		return writeLayer(t, f.s, dir, layer.WriteOptions{})
	}
	f.tagged = mk(map[string]string{"tagged": "t"})
	tagImage(t, f.s, "app", f.tagged)
	f.old = mk(map[string]string{"old": strings.Repeat("o", 3000)})
	f.new = mk(map[string]string{"new": strings.Repeat("n", 3000)})
	f.oldSize, f.newSize = f.old.Descriptor().Size, f.new.Descriptor().Size
	f.age(t, f.blob(f.old), 3*time.Hour)
	f.age(t, f.blob(f.new), time.Hour)
	dir, release, err := f.s.CacheMount(context.Background(), "m", Shared, func(d string) error {
		return os.WriteFile(filepath.Join(d, "data"), make([]byte, 5000), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	release()
	f.mount = dir
	f.mountUsed = f.s.path("locks", "cache-mount-"+filepath.Base(dir)+".used")
	f.age(t, f.mountUsed, 2*time.Hour)
	f.age(t, dir, 2*time.Hour)
	return f
}

func (f *pruneFixture) blob(l *layer.Layer) string { return f.s.blobPath(l.Descriptor().Digest) }

func (f *pruneFixture) age(t *testing.T, p string, d time.Duration) {
	t.Helper()
	if err := os.Chtimes(p, f.now.Add(-d), f.now.Add(-d)); err != nil {
		t.Fatal(err)
	}
}

func present(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestPruneKeepStorage: the least recently used goes first until what is
// left fits; the tagged image stays whole.
func TestPruneKeepStorage(t *testing.T) {
	f := newPruneFixture(t)
	r, err := f.s.PruneWith(PruneOptions{KeepStorage: f.newSize, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Blobs != 1 || r.CacheMounts != 1 || r.Bytes != f.oldSize+5000 {
		t.Errorf("report %+v, want the old blob and the cache mount, %d bytes", r, f.oldSize+5000)
	}
	if present(f.blob(f.old)) || present(f.mount) || !present(f.blob(f.new)) || !present(f.blob(f.tagged)) {
		t.Errorf("old %v, mount %v, new %v, tagged %v: want only the new and the tagged", present(f.blob(f.old)), present(f.mount), present(f.blob(f.new)), present(f.blob(f.tagged)))
	}
	if _, err := f.s.Resolve("app"); err != nil {
		t.Error(err)
	}
}

// TestPruneUntil: what was used more recently than until stays.
func TestPruneUntil(t *testing.T) {
	f := newPruneFixture(t)
	r, err := f.s.PruneWith(PruneOptions{Until: 90 * time.Minute, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Blobs != 1 || r.CacheMounts != 1 || !present(f.blob(f.new)) || present(f.blob(f.old)) {
		t.Errorf("report %+v; new blob kept %v, old %v", r, present(f.blob(f.new)), present(f.blob(f.old)))
	}
}

// TestPruneAll: without All the snapshot of a tagged image stays (shared
// with the image, as BuildKit keeps it); with All it goes, never the
// image's blobs.
func TestPruneAll(t *testing.T) {
	f := newPruneFixture(t)
	snap, err := f.s.Snapshot(context.Background(), f.tagged, layer.ExtractOptions{Owners: testOwners()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.s.Prune()
	if err != nil {
		t.Fatal(err)
	}
	if r.Blobs != 2 || r.CacheMounts != 1 || r.Snapshots != 0 || !present(snap) {
		t.Errorf("prune: %+v, snapshot kept %v; want both untagged blobs and the mount, the snapshot kept", r, present(snap))
	}
	if r, err = f.s.PruneWith(PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if r.Snapshots != 1 || present(snap) || !present(f.blob(f.tagged)) {
		t.Errorf("prune --all: %+v, snapshot kept %v, tagged blob kept %v", r, present(snap), present(f.blob(f.tagged)))
	}
}

func TestUntagMissing(t *testing.T) {
	s := openStore(t)
	if err := s.Untag("nope:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Untag of a name no image has: %v, want ErrNotFound", err)
	}
}

// loadImage is an image of two layers, as tagImage stores it.
func loadImage(t *testing.T, s *Store) v1.Image {
	t.Helper()
	var ls []*layer.Layer
	for _, c := range []string{"one", "two"} {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{c: c})
		ls = append(ls, writeLayer(t, s, dir, layer.WriteOptions{}))
	}
	return tagImage(t, s, "src:1", ls...)
}

func tarOf(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

// TestLoadOCI: an OCI archive and layout load with their digest and
// their name.
func TestLoadOCI(t *testing.T) {
	img := loadImage(t, openStore(t))
	want, _ := img.Digest()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "example.com/app:2", "org.opencontainers.image.ref.name": "2"})); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src string
		r   []byte
	}{{dir, nil}, {"-", tarOf(t, dir)}} {
		s := openStore(t)
		got, err := s.Load(context.Background(), c.src, bytes.NewReader(c.r))
		if err != nil {
			t.Fatalf("Load(%s): %v", c.src, err)
		}
		if len(got) != 1 || got[0].Desc.Digest != want || len(got[0].Names) != 1 || got[0].Names[0] != "example.com/app:2" {
			t.Fatalf("Load(%s) = %+v, want %s named example.com/app:2", c.src, got, want)
		}
		if _, _, err := s.image(want); err != nil {
			t.Errorf("Load(%s): the image is not whole in the store: %v", c.src, err)
		}
	}
}

// TestLoadDocker: a docker archive's image keeps its config (docker's
// image ID) and layers, under an OCI manifest, with its RepoTags.
func TestLoadDocker(t *testing.T) {
	img := loadImage(t, openStore(t))
	var buf bytes.Buffer
	tag, _ := name.NewTag("example.com/app:3")
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	got, err := s.Load(context.Background(), "-", bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Names) != 1 || got[0].Names[0] != "example.com/app:3" {
		t.Fatalf("Load = %+v", got)
	}
	m, cfg, err := s.image(got[0].Desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, _ := img.ConfigName()
	wantM, _ := img.Manifest()
	if m.Config.Digest != wantCfg || m.MediaType != "application/vnd.oci.image.manifest.v1+json" || len(m.Layers) != 2 || m.Layers[1].Digest != wantM.Layers[1].Digest || len(cfg.RootFS.DiffIDs) != 2 {
		t.Errorf("loaded manifest %+v, want config %s and the layers %v", m, wantCfg, wantM.Layers)
	}
}

// TestLoadBadInput: what is not an image archive is refused in one line,
// and a layer whose content is not what the config says is not tagged.
func TestLoadBadInput(t *testing.T) {
	s := openStore(t)
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte("hello, not a tar at all, but long enough to have a header block..."), "not a tar archive"},
		{tarFiles(t, map[string]string{"a.txt": "a"}), "neither a docker archive"},
		{tarFiles(t, map[string]string{"manifest.json": `[{"Config":"c.json","Layers":["l.tar"]}]`, "c.json": `{"rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("0", 64) + `"]}}`, "l.tar": string(tarFiles(t, map[string]string{"f": "f"}))}), "the config says sha256:000"},
		{tarFiles(t, map[string]string{"index.json": `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("1", 64) + `"}]}`}), "blobs/sha256/111"},
	} {
		_, err := s.Load(context.Background(), "-", bytes.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Load: %v, want one line with %q", err, c.want)
		}
	}
}

func tarFiles(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
		tw.Write([]byte(c))
	}
	tw.Close()
	return buf.Bytes()
}

// TestLoadHostile: a layout directory's symlink to a host file is not
// followed (the file is neither stored nor hashed in the error), and a
// manifest whose layer size lies is refused, not stored to break every
// later use of the image.
func TestLoadHostile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("HOSTSECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretHash, _, _ := v1.SHA256(strings.NewReader("HOSTSECRET"))
	img := loadImage(t, openStore(t))
	ociDir := t.TempDir()
	p, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "example.com/app:2"})); err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	linked := t.TempDir()
	if err := os.CopyFS(linked, os.DirFS(ociDir)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(linked, "blobs", "sha256", cfgName.Hex))
	if err := os.Symlink(secret, filepath.Join(linked, "blobs", "sha256", cfgName.Hex)); err != nil {
		t.Fatal(err)
	}
	docker := t.TempDir()
	os.Symlink(secret, filepath.Join(docker, "config.json"))
	os.WriteFile(filepath.Join(docker, "manifest.json"), []byte(`[{"Config":"config.json","Layers":[]}]`), 0o644)

	// The OCI archive of ociDir, its manifest giving a layer 5 bytes more.
	m, _ := img.Manifest()
	m.Layers[0].Size += 5
	raw, _ := json.Marshal(m)
	h, _, _ := v1.SHA256(bytes.NewReader(raw))
	lying := t.TempDir()
	os.CopyFS(lying, os.DirFS(ociDir))
	os.WriteFile(filepath.Join(lying, "blobs", "sha256", h.Hex), raw, 0o644)
	idx := fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}]}`, h, len(raw))
	os.WriteFile(filepath.Join(lying, "index.json"), []byte(idx), 0o644)

	for _, c := range []struct {
		name, src string
		r         []byte
		want      string
	}{
		{"OCI layout, config linked to a host file", linked, nil, "blobs/sha256/" + cfgName.Hex},
		{"docker directory, config linked to a host file", docker, nil, "config.json"},
		{"OCI archive, layer size lies", "-", tarOf(t, lying), "descriptor says"},
	} {
		s := openStore(t)
		_, err := s.Load(context.Background(), c.src, bytes.NewReader(c.r))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), secretHash.Hex) || strings.Contains(err.Error(), "OSTSECRET") {
			t.Errorf("%s: Load: %v, want an error with %q, the host file unread", c.name, err, c.want)
		}
		if present(s.blobPath(secretHash)) {
			t.Errorf("%s: the host file is stored as a blob", c.name)
		}
	}
}
