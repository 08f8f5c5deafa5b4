package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testHarness runs the suite's image checks on an image go-containerregistry made, so that a
// failing case points at strata, not at the checks or at this machine's tools.
func (e *e2eEnv) testHarness(t *testing.T) {
	img, err := baseImage(e.busybox, true, []string{"/bin/echo", "harness ok"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	writeTarOf(t, dir, archive)
	_, digest := ociArchiveImage(t, archive)
	if got := skopeoDigest(t, "oci-archive:"+archive); got != digest {
		t.Errorf("skopeo reads %s, the layout holds %s", got, digest)
	}
	if got := runImage(t, archive); got != "harness ok\n" {
		t.Errorf("runc printed %q, want \"harness ok\\n\"", got)
	}
	ref := e.registry + "/e2e/harness:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	if got := pullBack(t, ref); got != digest {
		t.Errorf("skopeo copy gave %s, pushed %s", got, digest)
	}
}

// writeTarOf archives the tree at dir into file.
func writeTarOf(t *testing.T, dir, file string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
