package layer

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/layer")

const goldenFile = "../testdata/layer/golden-digests.txt"

var compressions = []Compression{Gzip, Zstd, None}

func writeLayer(t testing.TB, s *testStore, dir string, opts WriteOptions) *Layer {
	t.Helper()
	l, err := s.WriteLayer(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("WriteLayer(%s): %v", dir, err)
	}
	return l
}

func layerLine(c Compression, l *Layer) string {
	return fmt.Sprintf("%s diffID=%s digest=%s size=%d", c, l.diffID, l.digest, l.size)
}

// TestGoldenDigests pins the bytes of a fixed tree per compression: a
// change in the tar format, the walk or a compressor library fails here.
func TestGoldenDigests(t *testing.T) {
	requireRoot(t)
	tree := t.TempDir()
	makeTree(t, tree, fixedTree(), treeTime)
	s := openStore(t)
	var got []string
	for _, c := range compressions {
		got = append(got, layerLine(c, writeLayer(t, s, tree, WriteOptions{Compression: c})))
	}
	text := strings.Join(got, "\n") + "\n"
	if *update {
		if err := os.WriteFile(goldenFile, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("reading golden digests (run with -update to create them): %v", err)
	}
	if text != string(want) {
		t.Errorf("layer digests changed:\ngot:\n%swant:\n%s", text, want)
	}
}

// TestEpochMakesWritesIdentical writes the fixed tree with today's mtimes
// and an epoch: every mtime is clamped, so the digests equal the goldens
// of the tree whose mtimes are the epoch.
func TestEpochMakesWritesIdentical(t *testing.T) {
	requireRoot(t)
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	epoch := treeTime
	for i, mtime := range []time.Time{time.Now(), time.Now().Add(time.Hour + 1234567*time.Nanosecond)} {
		tree := t.TempDir()
		makeTree(t, tree, fixedTree(), mtime)
		for _, c := range compressions {
			l := writeLayer(t, s, tree, WriteOptions{Compression: c, Epoch: &epoch})
			if line := layerLine(c, l); !strings.Contains(string(want), line+"\n") {
				t.Errorf("write %d: %s is not among the golden digests", i, line)
			}
		}
	}
}

// TestEpochKeepsOlderTimes checks the clamp only lowers times.
func TestEpochKeepsOlderTimes(t *testing.T) {
	s := openStore(t)
	tree := t.TempDir()
	makeTree(t, tree, []node{{path: "f", kind: "file", mode: 0o644, data: "x"}}, treeTime)
	later := treeTime.Add(24 * time.Hour)
	a := writeLayer(t, s, tree, WriteOptions{Compression: None})
	b := writeLayer(t, s, tree, WriteOptions{Compression: None, Epoch: &later})
	if a.diffID != b.diffID {
		t.Errorf("an epoch after every mtime changed the layer: %s vs %s", a.diffID, b.diffID)
	}
}
