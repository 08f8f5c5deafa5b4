package layer

import (
	"context"
	"github.com/strata-build/strata/internal/owners"
	"os"
	"slices"
	"testing"
)

// rootlessTree is the part of the fixed tree an unprivileged user can make.
func rootlessTree() []node {
	var out []node
	uid, gid := os.Getuid(), os.Getgid()
	for _, n := range fixedTree() {
		if n.kind == "char" || n.kind == "block" || n.xattr["security.capability"] != "" {
			continue
		}
		n.uid, n.gid = uid, gid
		out = append(out, n)
	}
	return out
}

// TestRoundTrip writes a tree with every file type, extracts it in both
// modes and writes the result again: the layer must not change, nor the
// tree a user sees.
func TestRoundTrip(t *testing.T) {
	nodes, opts := fixedTree(), ExtractOptions{}
	if os.Geteuid() != 0 {
		t.Log("not root: round trip without devices, ownership and capabilities")
		nodes, opts = rootlessTree(), ExtractOptions{Owners: owners.Recorded}
	}
	tree := t.TempDir()
	makeTree(t, tree, nodes, treeTime)
	s := openStore(t)
	for _, c := range compressions {
		first := writeLayer(t, s, tree, WriteOptions{Compression: c})
		for _, mode := range []ExtractMode{Flatten, OverlayLower} {
			t.Run(string(c)+"/"+modeName(mode), func(t *testing.T) {
				opts.Mode = mode
				out := extractLayer(t, first, opts)
				if diff := diffLines(describeTree(t, tree, describeOptions{}), describeTree(t, out, describeOptions{})); diff != "" {
					t.Errorf("extracted tree differs from the original:\n%s", diff)
				}
				again := writeLayer(t, s, out, WriteOptions{Compression: c})
				if again.diffID != first.diffID || again.digest != first.digest {
					t.Errorf("rewritten layer %s/%s, want %s/%s", again.diffID, again.digest, first.diffID, first.digest)
				}
			})
		}
	}
}

func modeName(m ExtractMode) string {
	if m == OverlayLower {
		return "overlay"
	}
	return "flatten"
}

func extractLayer(t testing.TB, l *Layer, opts ExtractOptions) string {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := t.TempDir()
	t.Cleanup(func() { makeWritable(out) })
	got, err := Extract(context.Background(), rc, out, opts)
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if got != l.diffID {
		t.Errorf("Extract returned diffID %s, want %s", got, l.diffID)
	}
	return out
}

// diffLines shows the lines only in a or only in b.
func diffLines(a, b []string) string {
	var out string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out += "- " + l + "\n"
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out += "+ " + l + "\n"
		}
	}
	return out
}
