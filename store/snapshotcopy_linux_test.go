package store

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/layer"
)

// TestSnapshotCopy: the further directories of a layer repeated in a stack
// are separate trees (no directory or inode shared with the snapshot, as
// overlayfs needs distinct lowers) equal to the snapshot, also for an
// adopted layer whose copy is asked for before its snapshot, which must
// still adopt the written directory.
func TestSnapshotCopy(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := openStore(t)
	tree := filepath.Join(s.session, "tree")
	upperTree(t, tree)
	l := writeLayer(t, s, tree, layer.WriteOptions{Source: layer.FromUpper, Adopt: true})
	written := rootInode(t, tree)
	first := snapshotCopy(t, s, l, 1)
	snap, err := s.Snapshot(ctx, l, layer.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rootInode(t, snap) != written {
		t.Error("the snapshot is not the written directory: the copy took the adoption")
	}
	second := snapshotCopy(t, s, l, 2)
	if again := snapshotCopy(t, s, l, 1); again != first {
		t.Errorf("copy 1 is %s, then %s", first, again)
	}
	want := describeDir(t, snap)
	for _, dir := range []string{first, second} {
		if dir == snap || sharesInodes(t, snap, dir) {
			t.Errorf("%s shares inodes with the snapshot %s", dir, snap)
		}
		if got := describeDir(t, dir); !slices.Equal(got, want) {
			t.Errorf("copy %s differs from the snapshot:\n%s", dir, diffLines(want, got))
		}
	}
	if _, err := s.SnapshotCopy(ctx, l, 0, layer.ExtractOptions{}); err == nil {
		t.Error("SnapshotCopy(0) succeeded: copy 0 is the snapshot itself")
	}
}

func snapshotCopy(t *testing.T, s *Store, l *layer.Layer, n int) string {
	t.Helper()
	dir, err := s.SnapshotCopy(context.Background(), l, n, layer.ExtractOptions{})
	if err != nil {
		t.Fatalf("SnapshotCopy(%d): %v", n, err)
	}
	return dir
}

func rootInode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// sharesInodes reports whether any entry of b is an inode of a.
func sharesInodes(t *testing.T, a, b string) bool {
	t.Helper()
	inodes := func(dir string) map[uint64]bool {
		out := map[uint64]bool{}
		err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			var st unix.Stat_t
			if err == nil {
				err = unix.Lstat(p, &st)
			}
			out[st.Ino] = true
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ia := inodes(a)
	for ino := range inodes(b) {
		if ia[ino] {
			return true
		}
	}
	return false
}
