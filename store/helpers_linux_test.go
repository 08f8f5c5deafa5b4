package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/layer"
)

var compressions = []layer.Compression{layer.Gzip, layer.Zstd, layer.None}

var treeTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (device nodes, trusted.* xattrs, owners)")
	}
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeTree makes files under dir: path -> content, "->target" for a symlink, a path
// ending in "/" for a directory; every time is treeTime.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch target, link := strings.CutPrefix(content, "->"); {
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o755)
		case link:
			err = os.Symlink(target, p)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		ts := unix.NsecToTimespec(treeTime.UnixNano())
		unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		return err
	})
}

// smallTree is a tree of the kinds any user can make.
func smallTree(t testing.TB, dir string) {
	writeTree(t, dir, map[string]string{"a/b/c.txt": "c", "a/link": "->b/c.txt", "empty/": "", "top": "top"})
}

// upperTree is an overlay upper dir: files, a whiteout and an opaque directory.
func upperTree(t testing.TB, dir string) {
	writeTree(t, dir, map[string]string{"keep/f": "f", "u/g": "g"})
	if err := unix.Mknod(filepath.Join(dir, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(dir, "u"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
}

func writeLayer(t testing.TB, s *Store, dir string, opts layer.WriteOptions) *layer.Layer {
	t.Helper()
	l, err := s.WriteLayer(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("WriteLayer(%s): %v", dir, err)
	}
	return l
}

// tagImage stores an OCI image of layers in s under name, the way the builder does:
// config and manifest as blobs, then a tag in index.json.
func tagImage(t *testing.T, s *Store, name string, layers ...*layer.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.ConfigFile(img, &v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: cf.RootFS}); err != nil {
		t.Fatal(err)
	}
	rawCfg, _ := img.RawConfigFile()
	rawMan, _ := img.RawManifest()
	for _, raw := range [][]byte{rawCfg, rawMan} {
		if _, _, err := s.PutBlob(context.Background(), strings.NewReader(string(raw)), v1.Hash{}); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := img.Digest()
	if err := s.Tag(name, v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: int64(len(rawMan))}); err != nil {
		t.Fatal(err)
	}
	return img
}

// describeDir lists every entry of a tree with what a snapshot must keep: type and mode,
// owner, device, content, link target, xattrs.
func describeDir(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o owner=%d:%d dev=%d", rel, st.Mode, st.Uid, st.Gid, st.Rdev)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			data, _ := os.ReadFile(p)
			line += fmt.Sprintf(" sha=%x", sha256.Sum256(data))
		}
		if target, err := os.Readlink(p); err == nil {
			line += " -> " + target
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			slices.Sort(names)
			line += " xattrs=" + strings.Join(names, ",")
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// diffLines shows the lines only one side has.
func diffLines(want, got []string) string {
	var out []string
	for _, l := range want {
		if !slices.Contains(got, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// testOwners is the owner policy a test run as this user needs.
func testOwners() owners.Policy {
	if os.Geteuid() != 0 {
		return owners.Recorded
	}
	return owners.Host
}
