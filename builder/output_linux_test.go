package builder

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata/registry"
)

func TestExport(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "COPY one.txt /one\n")
	host, _ := countingRegistry(t)
	dir := t.TempDir()
	ctx := context.Background()
	outs := []Output{
		{Type: "oci", Dest: filepath.Join(dir, "oci.tar"), Names: []string{"example/app:1"}},
		{Type: "oci-layout", Dest: filepath.Join(dir, "layout")},
		{Type: "docker", Dest: filepath.Join(dir, "docker.tar"), Names: []string{"example/app:1"}},
		{Type: "local", Dest: filepath.Join(dir, "local")},
		{Type: "tar", Dest: filepath.Join(dir, "rootfs.tar")},
		{Type: "registry", Names: []string{host + "/app:1"}},
	}
	for _, out := range outs {
		if err := Export(ctx, res.Image, out); err != nil {
			t.Fatalf("%s: %v", out.Type, err)
		}
	}
	want := res.Descriptor.Digest
	p, err := layout.FromPath(filepath.Join(dir, "layout"))
	if err != nil {
		t.Fatal(err)
	}
	if img, err := p.Image(want); err != nil || validate.Image(img) != nil {
		t.Errorf("oci-layout: %v", err)
	}
	tag, _ := name.NewTag("example/app:1")
	if img, err := tarball.ImageFromPath(filepath.Join(dir, "docker.tar"), &tag); err != nil || validate.Image(img) != nil {
		t.Errorf("docker archive: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "local/one")); err != nil || string(got) != "one" {
		t.Errorf("local: %q, %v", got, err)
	}
	ref, _ := name.ParseReference(host+"/app:1", name.Insecure)
	if d, err := remote.Head(ref); err != nil || d.Digest != want {
		t.Errorf("registry: %v, %v; want %s", d, err, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "oci.tar")); err != nil || fi.Size() == 0 {
		t.Errorf("oci archive: %v", err)
	}
}

func TestPruneKeepsTagged(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	kept, _ := tb.mustBuild(baseDockerfile)
	if err := Tag(tb.store, kept, []string{"kept"}); err != nil {
		t.Fatal(err)
	}
	tb.mustBuild(baseDockerfile + "COPY one.txt /one\n")
	r, err := tb.store.Prune()
	if err != nil {
		t.Fatal(err)
	}
	if r.Blobs == 0 || r.CacheEntries == 0 {
		t.Errorf("pruned %+v, want the untagged image's blobs and the cache", r)
	}
	if _, _, err := OpenImage(context.Background(), tb.store, "kept", registry.Config{}); err != nil {
		t.Errorf("tagged image lost: %v", err)
	}
	if _, out := tb.mustBuild(baseDockerfile + "COPY one.txt /one\n"); out == "" {
		t.Error("no progress output")
	}
}

func TestDeadBuildsTempCleaned(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	base := filepath.Join(tb.store.Root(), "build-tmp")
	for _, p := range []string{"build-nolock/f", "build-freelock/f"} {
		if err := os.MkdirAll(filepath.Join(base, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "build-freelock.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tb.mustBuild(baseDockerfile)
	entries, _ := os.ReadDir(base)
	if len(entries) != 0 {
		t.Errorf("build-tmp holds %d entries after the build, want none", len(entries))
	}
}
