package layer

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-build/strata/internal/minirootfs"
)

// TestRealRootfs applies real root filesystem tarballs as GNU tar does,
// writes the result as a layer and applies that again: all three trees
// must be identical. It always runs on a busybox minirootfs it makes with
// the project's own internal/minirootfs (tarred by GNU tar, with its "./"
// names and directory order, and by WriteTar, as cmd/mkrootfs does), and
// also on the third-party tarballs in ../../shared/rootfs when this
// checkout has them (Alpine's minirootfs, busybox trees full of
// hardlinks; see PROVENANCE.md there).
func TestRealRootfs(t *testing.T) {
	requireRoot(t)
	s := openStore(t)
	shared, _ := filepath.Glob("../../shared/rootfs/*.tar.gz")
	if len(shared) == 0 {
		t.Log("no third-party rootfs tarballs in ../../shared/rootfs: only the minirootfs runs")
	}
	for _, p := range shared {
		t.Run(filepath.Base(p), func(t *testing.T) { checkRootfs(t, s, p) })
	}
	t.Run("minirootfs", func(t *testing.T) {
		tree := makeMinirootfs(t)
		for _, tc := range []struct {
			name string
			tar  func(t *testing.T, tree, out string)
		}{
			{"gnu-tar.tar.gz", func(t *testing.T, tree, out string) {
				external(t, "tar", nil, "--numeric-owner", "--xattrs", "-czf", out, "-C", tree, ".")
			}},
			{"write-tar.tar.gz", writeTarGz},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := filepath.Join(t.TempDir(), tc.name)
				tc.tar(t, tree, p)
				checkRootfs(t, s, p)
			})
		}
	})
}

// makeMinirootfs makes the busybox tree the examples and sandbox tests use.
func makeMinirootfs(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(minirootfs.DefaultBusybox); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is missing: install Debian's busybox-static (testdata/install-test-deps.sh does)", minirootfs.DefaultBusybox)
	}
	tree := filepath.Join(t.TempDir(), "rootfs")
	if err := minirootfs.Make(tree, minirootfs.Options{ModTime: treeTime}); err != nil {
		t.Fatalf("making the minirootfs: %v", err)
	}
	return tree
}

// writeTarGz writes tree the way cmd/mkrootfs does: WriteTar through gzip.
func writeTarGz(t *testing.T, tree, out string) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := WriteTar(context.Background(), zw, tree, WriteOptions{Epoch: &treeTime}); err != nil {
		t.Fatalf("writing the minirootfs tar: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkRootfs extracts the gzipped tarball at p with Extract and with GNU
// tar, then through a layer of s, and compares the three trees.
func checkRootfs(t *testing.T, s *testStore, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := t.TempDir()
	if _, err := Extract(context.Background(), f, first, ExtractOptions{MaxSize: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	gnu := t.TempDir()
	external(t, "tar", nil, "--numeric-owner", "--xattrs", "-xpzf", p, "-C", gnu)
	if diff := diffLines(describeTree(t, gnu, describeOptions{}), describeTree(t, first, describeOptions{})); diff != "" {
		t.Errorf("Extract differs from GNU tar (- tar, + Extract):\n%s", diff)
	}
	l := writeLayer(t, s, first, WriteOptions{Compression: Zstd})
	second := extractLayer(t, l, ExtractOptions{Mode: OverlayLower})
	if diff := diffLines(describeTree(t, first, describeOptions{}), describeTree(t, second, describeOptions{})); diff != "" {
		t.Errorf("rootfs changed through a layer:\n%s", diff)
	}
}
