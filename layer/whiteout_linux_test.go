package layer

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"
)

func mountOverlay(t *testing.T, target, opts string) {
	t.Helper()
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount overlayfs here (%v)", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			t.Errorf("unmounting %s: %v", target, err)
		}
	})
}

func mkdirs(t *testing.T, base string, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		p := filepath.Join(base, n)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// runIn runs a shell script in dir as a build step would.
func runIn(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// makeStep builds a base tree and lets a real overlay mount record a step
// that deletes a file, a directory, and replaces a directory (opaque).
func makeStep(t *testing.T) (base, upper string) {
	d := mkdirs(t, t.TempDir(), "base", "upper", "work", "merged")
	makeTree(t, d[0], []node{
		{path: "a/keep", kind: "file", mode: 0o644, data: "keep"},
		{path: "a/gone", kind: "file", mode: 0o644, data: "gone"},
		{path: "d/old", kind: "file", mode: 0o644, data: "old"},
		{path: "d/sub/older", kind: "file", mode: 0o600, data: "older"},
		{path: "x", kind: "file", mode: 0o644, data: "x1"},
		{path: "y/inner", kind: "file", mode: 0o644, data: "inner"},
		{path: "z", kind: "symlink", data: "a/keep"},
	}, treeTime)
	mountOverlay(t, d[3], "lowerdir="+d[0]+",upperdir="+d[1]+",workdir="+d[2]+",redirect_dir=off,metacopy=off")
	runIn(t, d[3], "rm a/gone; rm -rf d; mkdir d; echo new > d/new; rm -rf y; echo x2 > x; rm z; mkfifo p")
	if err := unix.Unmount(d[3], 0); err != nil {
		t.Fatal(err)
	}
	return d[0], d[1]
}

func tarNames(t *testing.T, l *Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

// TestWhiteoutsMatchOCIReaders converts a real overlay upper dir, stacks
// the layers as overlay lowers, and compares the mounted view with what
// umoci unpacks from the same image, and with a flattened extraction.
func TestWhiteoutsMatchOCIReaders(t *testing.T) {
	requireRoot(t)
	base, upper := makeStep(t)
	s := openStore(t)
	l1 := writeLayer(t, s, base, WriteOptions{Compression: None})
	// umoci 0.4.7 (Debian 12) reads gzip and plain layers, not zstd.
	l2 := writeLayer(t, s, upper, WriteOptions{Source: FromUpper, Compression: Gzip})
	want := []string{".wh.y", ".wh.z", "a/", "a/.wh.gone", "d/", "d/.wh..wh..opq", "d/new", "p", "x"}
	if got := tarNames(t, l2); !slices.Equal(got, want) {
		t.Fatalf("upper dir became entries %q, want %q", got, want)
	}
	merged := mountLowers(t, s, l2, l1)
	unpacked := umociUnpack(t, s, l1, l2)
	flat := t.TempDir()
	for _, l := range []*Layer{l1, l2} {
		rc, _ := l.Compressed()
		if _, err := Extract(context.Background(), rc, flat, ExtractOptions{}); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	view := describeTree(t, merged, describeOptions{})
	if diff := diffLines(describeTree(t, unpacked, describeOptions{}), view); diff != "" {
		t.Errorf("overlay of the lowers differs from umoci unpack (- umoci, + overlay):\n%s", diff)
	}
	if diff := diffLines(describeTree(t, flat, describeOptions{}), view); diff != "" {
		t.Errorf("overlay of the lowers differs from Flatten (- flatten, + overlay):\n%s", diff)
	}
	var names []string
	for _, l := range view {
		names = append(names, strings.Fields(l)[0])
	}
	if want := []string{"a", "a/keep", "d", "d/new", "p", "x"}; !slices.Equal(names, want) {
		t.Errorf("merged view has %q, want %q:\n%s", names, want, strings.Join(view, "\n"))
	}
}

// mountLowers mounts the snapshots of layers (top first) read-only.
func mountLowers(t *testing.T, s *testStore, layers ...*Layer) string {
	t.Helper()
	var lowers []string
	for _, l := range layers {
		dir, err := s.Snapshot(context.Background(), l, ExtractOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lowers = append(lowers, dir)
	}
	merged := t.TempDir()
	mountOverlay(t, merged, "lowerdir="+strings.Join(lowers, ":"))
	return merged
}

// umociUnpack writes an image of layers to an OCI layout and unpacks it with umoci.
func umociUnpack(t *testing.T, s *testStore, layers ...*Layer) string {
	t.Helper()
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Skip("umoci not installed (testdata/install-test-deps.sh installs it)")
	}
	dir := s.tagLayout(testImage(t, layers...), "test")
	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err := exec.Command("umoci", "unpack", "--image", dir+":test", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	return filepath.Join(bundle, "rootfs")
}

// testImage is an OCI image of layers, as the builder makes one.
func testImage(t *testing.T, layers ...*Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []v1.Layer
	var vopts []validate.Option
	for _, l := range layers {
		adds = append(adds, l)
		if l.mediaType != types.OCILayer {
			// validate only reads gzip layers; Fast still checks the manifest.
			vopts = []validate.Option{validate.Fast}
		}
	}
	img, err := mutate.AppendLayers(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: mustConfig(t, img).RootFS})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img, vopts...); err != nil {
		t.Fatalf("image does not validate: %v", err)
	}
	return img
}

func mustConfig(t *testing.T, img v1.Image) *v1.ConfigFile {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// TestWriterRefusesReservedNames: a user file named .wh.* would silently
// delete something in every reader of the image.
func TestWriterRefusesReservedNames(t *testing.T) {
	for _, src := range []Source{FromDir, FromUpper} {
		tree := t.TempDir()
		makeTree(t, tree, []node{{path: "etc/.wh.passwd", kind: "file", mode: 0o644}}, treeTime)
		_, err := openStore(t).WriteLayer(context.Background(), tree, WriteOptions{Source: src})
		if err == nil || !strings.Contains(err.Error(), "etc/.wh.passwd") {
			t.Errorf("source %d: got %v, want an error naming etc/.wh.passwd", src, err)
		}
	}
}

// TestPlainDirKeepsCharDevices: outside an upper dir, a char device 0:0
// is content, not a deletion.
func TestPlainDirKeepsCharDevices(t *testing.T) {
	requireRoot(t)
	tree := t.TempDir()
	makeTree(t, tree, []node{{path: "dev/zero0", kind: "char", mode: 0o600}}, treeTime)
	names := tarNames(t, writeLayer(t, openStore(t), tree, WriteOptions{}))
	if !slices.Equal(names, []string{"dev/", "dev/zero0"}) {
		t.Errorf("entries %q, want dev/ and dev/zero0", names)
	}
}

// TestUpperMarkers covers the upper-dir forms a copy-based fallback or an
// unprivileged (userxattr) mount leaves, and the overlay features whose
// upper dirs cannot be converted.
func TestUpperMarkers(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name    string
		xattr   string
		want    []string
		wantErr string
	}{
		{name: "trusted opaque", xattr: overlayOpaqueXattr, want: []string{"d/", "d/.wh..wh..opq", "d/f"}},
		{name: "user opaque", xattr: overlayUserOpaqueXattr, want: []string{"d/", "d/.wh..wh..opq", "d/f"}},
		{name: "redirect", xattr: "trusted.overlay.redirect", wantErr: "redirect_dir=off"},
		{name: "metacopy", xattr: "trusted.overlay.metacopy", wantErr: "metacopy=off"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			upper := t.TempDir()
			makeTree(t, upper, []node{{path: "d/f", kind: "file", mode: 0o644, data: "f"}}, treeTime)
			if err := unix.Lsetxattr(filepath.Join(upper, "d"), tc.xattr, []byte("y"), 0); err != nil {
				t.Fatal(err)
			}
			l, err := openStore(t).WriteLayer(context.Background(), upper, WriteOptions{Source: FromUpper})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error mentioning %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tarNames(t, l); !slices.Equal(got, tc.want) {
				t.Errorf("entries %q, want %q", got, tc.want)
			}
		})
	}
}
