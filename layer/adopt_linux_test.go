package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-build/strata/internal/owners"
	"golang.org/x/sys/unix"
)

// TestAdoptMatchesSnapshot writes trees with Adopt and checks that the
// snapshot left in place is exactly what Snapshot extracts from the blob.
func TestAdoptMatchesSnapshot(t *testing.T) {
	requireRoot(t)
	epoch := treeTime.Add(-time.Hour)
	sources := []struct {
		name string
		src  Source
		make func(t *testing.T, dir string)
	}{
		{name: "dir", src: FromDir, make: makeAdoptDir},
		{name: "upper", src: FromUpper, make: makeAdoptUpper},
	}
	for _, sc := range sources {
		for _, ep := range []*time.Time{nil, &epoch} {
			t.Run(fmt.Sprintf("%s/epoch=%v", sc.name, ep != nil), func(t *testing.T) {
				opts := WriteOptions{Source: sc.src, Epoch: ep}
				ref, adopted := openStore(t), openStore(t)
				tree := filepath.Join(adopted.session, "tree")
				sc.make(t, tree)
				want := writeLayer(t, ref, tree, opts)
				opts.Adopt = true
				got := writeLayer(t, adopted, tree, opts)
				if got.diffID != want.diffID {
					t.Fatalf("adopting changed the layer: %s, want %s", got.diffID, want.diffID)
				}
				gotTree, wantTree := describeSnapshot(t, adopted, got), describeSnapshot(t, ref, want)
				if exists(tree) {
					t.Fatal("the tree was not adopted")
				}
				if !slices.Equal(gotTree, wantTree) {
					t.Errorf("adopted snapshot differs from the extracted one:\n%s", diffLines(wantTree, gotTree))
				}
			})
		}
	}
}

// makeAdoptDir is the fixed tree with sub-second times and what a layer
// drops: a socket, xattrs that are not portable, an overlay marker.
func makeAdoptDir(t *testing.T, dir string) {
	makeTree(t, dir, fixedTree(), treeTime.Add(123456789))
	l, err := net.Listen("unix", filepath.Join(dir, "run", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	// A whole-second mtime below the epoch needs no clamping, but its atime
	// still differs from what extraction sets.
	old := filepath.Join(dir, "etc", "old")
	if err := os.WriteFile(old, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(old, treeTime.Add(-3*time.Hour), treeTime.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	setXattr(t, filepath.Join(dir, "etc", "shadow"), "trusted.origin", "x")
	setXattr(t, filepath.Join(dir, "data"), overlayOpaqueXattr, "y")
	setXattr(t, dir, "trusted.root", "x")
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// makeAdoptUpper is a real overlay step (whiteouts, an opaque directory)
// plus an unprivileged mount's opaque marker.
func makeAdoptUpper(t *testing.T, dir string) {
	_, upper := makeStep(t)
	if err := os.Rename(upper, dir); err != nil {
		// t.TempDir is on another filesystem: copy the upper dir over.
		cp(t, upper, dir)
	}
	makeTree(t, dir, []node{{path: "u/f", kind: "file", mode: 0o644, data: "f"}}, treeTime)
	setXattr(t, filepath.Join(dir, "u"), overlayUserOpaqueXattr, "y")
}

func cp(t *testing.T, from, to string) {
	t.Helper()
	l := writeLayer(t, openStore(t), from, WriteOptions{Source: FromUpper, Compression: None})
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := Extract(context.Background(), rc, to, ExtractOptions{Mode: OverlayLower}); err != nil {
		t.Fatal(err)
	}
}

func setXattr(t *testing.T, p, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		t.Fatalf("setting %s on %s: %v", name, p, err)
	}
}

// describeSnapshot is the snapshot of l: every entry's lstat, xattrs,
// content and hardlink group, mtimes to the nanosecond except where
// extraction leaves the time of extraction (the root, whiteouts).
func describeSnapshot(t *testing.T, s *testStore, l *Layer) []string {
	t.Helper()
	dir, err := s.Snapshot(context.Background(), l, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := map[uint64]string{}
	var lines []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line, err := describeAdopted(p, rel == ".", first, rel)
		lines = append(lines, rel+" "+line)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func describeAdopted(p string, root bool, first map[uint64]string, rel string) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", err
	}
	s := fmt.Sprintf("mode=%o uid=%d gid=%d dev=%d", st.Mode, st.Uid, st.Gid, st.Rdev)
	whiteout := st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
	if !root && !whiteout {
		s += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
	}
	if _, seen := first[st.Ino]; !seen && !whiteout && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		// atime too, from before this walk read the inode: extraction sets it
		// to the mtime, and a later step can see it. Directories are left out:
		// listing them moves it under relatime; so are later names of a hardlink.
		s += fmt.Sprintf(" atime=%d.%09d", st.Atim.Sec, st.Atim.Nsec)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if _, ok := first[st.Ino]; !ok {
			first[st.Ino] = rel
		}
		s += fmt.Sprintf(" nlink=%d group=%s", st.Nlink, first[st.Ino])
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		s += " sha=" + hex.EncodeToString(sum[:8])
	case unix.S_IFLNK:
		target, _ := os.Readlink(p)
		s += " -> " + target
	}
	names, err := listxattr(p)
	if err != nil {
		return "", err
	}
	slices.Sort(names)
	for _, x := range names {
		v, _ := getxattr(p, x)
		s += fmt.Sprintf(" %s=%q", x, v)
	}
	return s, nil
}

// TestAdoptRefuses leaves the trees that cannot be snapshots as they are
// (untouched, for the caller to remove) and extracts the blob instead, or
// refuses it as extraction does.
func TestAdoptRefuses(t *testing.T) {
	requireRoot(t)
	file := node{path: "f", kind: "file", mode: 0o644, data: "f"}
	cases := []struct {
		name    string
		nodes   []node
		opts    ExtractOptions
		wantErr bool
	}{
		{name: "char device 0:0", nodes: []node{{path: "c", kind: "char", mode: 0o600}}, wantErr: true},
		{name: "hardlink from outside", nodes: []node{file, {path: "../outside", kind: "hardlink", data: "f"}}},
		{name: "ignoring ownership", nodes: []node{file}, opts: ExtractOptions{Owners: owners.Recorded}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			tree := filepath.Join(s.session, "tree")
			makeTree(t, tree, tc.nodes, treeTime.Add(5))
			before := describeTree(t, tree, describeOptions{})
			l := writeLayer(t, s, tree, WriteOptions{Adopt: true})
			if _, err := s.Snapshot(context.Background(), l, tc.opts); (err != nil) != tc.wantErr {
				t.Fatalf("Snapshot: %v, want an error: %t", err, tc.wantErr)
			}
			if diff := diffLines(before, describeTree(t, tree, describeOptions{})); diff != "" {
				t.Errorf("the tree changed:\n%s", diff)
			}
		})
	}
}

// TestAdoptPlanIsBounded: a tree with more entries than the plan holds is
// refused (and extracted later like any layer) and its plan freed, so a step
// that makes millions of files cannot pin their names in memory.
func TestAdoptPlanIsBounded(t *testing.T) {
	p := newAdoptPlan()
	p.fixes = make([]fix, maxAdoptEntries-1)
	if p.full() {
		t.Fatal("full below the bound")
	}
	p.fixes = append(p.fixes, fix{})
	if !p.full() || p.check() == nil || p.fixes != nil {
		t.Fatalf("at the bound: refused=%v, %d fixes kept", p.check(), len(p.fixes))
	}
}
