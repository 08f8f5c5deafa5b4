package layer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// sharedRootfs lists the third-party rootfs tarballs when this checkout
// has them (see /work/shared/rootfs/PROVENANCE.md); tests skip otherwise.
func sharedRootfs(t *testing.T) []string {
	t.Helper()
	paths, _ := filepath.Glob("../../shared/rootfs/*.tar.gz")
	if len(paths) == 0 {
		t.Skip("no third-party rootfs tarballs in ../../shared/rootfs")
	}
	return paths
}

// TestRealRootfs applies real distribution tarballs (Alpine's minirootfs,
// busybox trees full of hardlinks) as GNU tar does, writes the result as a layer and
// applies that again: both trees must be identical.
func TestRealRootfs(t *testing.T) {
	requireRoot(t)
	s := openStore(t)
	for _, p := range sharedRootfs(t) {
		t.Run(filepath.Base(p), func(t *testing.T) {
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
		})
	}
}
