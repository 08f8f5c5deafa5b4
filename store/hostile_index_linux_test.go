package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// writeRawBlob puts b in the OCI layout dir and describes it.
func writeRawBlob(t *testing.T, dir string, mt types.MediaType, b []byte) v1.Descriptor {
	t.Helper()
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	p := filepath.Join(dir, "blobs", "sha256", h.Hex)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(b))}
}

func rawJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// indexBomb is an OCI layout whose index holds two platform images and an
// index that lists one index fan times, which lists another fan times,
// depth deep: a few kilobytes naming fan^depth manifests, as a hostile
// archive could.
func indexBomb(t *testing.T, fan, depth int) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	var imgs []v1.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		l := oneFileLayer(t, "arch", arch)
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		diff, _ := l.DiffID()
		ld := writeRawBlob(t, dir, types.OCILayer, data)
		cfg := v1.ConfigFile{OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diff}}}
		cd := writeRawBlob(t, dir, types.OCIConfigJSON, rawJSON(t, cfg))
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: []v1.Descriptor{ld}}
		md := writeRawBlob(t, dir, types.OCIManifestSchema1, rawJSON(t, m))
		md.Platform = &v1.Platform{OS: "linux", Architecture: arch}
		imgs = append(imgs, md)
	}
	inner := writeRawBlob(t, dir, types.OCIImageIndex, rawJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: imgs}))
	for range depth {
		var ms []v1.Descriptor
		for range fan {
			ms = append(ms, inner)
		}
		inner = writeRawBlob(t, dir, types.OCIImageIndex, rawJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ms}))
	}
	top := writeRawBlob(t, dir, types.OCIImageIndex, rawJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: append(imgs, inner)}))
	top.Annotations = map[string]string{"io.containerd.image.name": "example.com/bomb:1"}
	os.WriteFile(filepath.Join(dir, "index.json"), rawJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{top}}), 0o644)
	return dir
}

// TestLoadIndexBomb: an index naming the same nested index over and over
// loads, and prunes, in time linear in its distinct manifests: a hostile
// archive of a few kilobytes cannot hold strata load (or a later prune)
// for ever.
func TestLoadIndexBomb(t *testing.T) {
	dir := indexBomb(t, 60, 5) // 60^5: nearly a billion visits, walked naively
	s := openStore(t)
	done := make(chan error, 1)
	go func() {
		got, err := s.Load(context.Background(), dir, nil)
		if err == nil {
			if len(got) != 1 || !got[0].Desc.MediaType.IsIndex() {
				err = fmt.Errorf("Load = %+v, want the index", got)
			} else {
				err = s.Tag("example.com/bomb:1", got[0].Desc)
			}
		}
		if err == nil {
			_, err = s.Prune()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("load and prune of an index bomb still running after 20s")
	}
}
