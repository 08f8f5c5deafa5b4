package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// rootfsArchive is a gzip tar in no canonical order, as rootfs tarballs
// come: "./" names, the root's own entry late, a directory after its
// contents, directories only implied, hard links, devices, setuid bits
// and a file given twice.
func rootfsArchive(t *testing.T, extra ...tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mt := time.Unix(1600000000, 0)
	hdrs := []tar.Header{
		{Name: "./dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/bin/sh", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 6},
		{Name: "./usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 3},
		{Name: "./usr/bin/ash", Typeflag: tar.TypeLink, Linkname: "./usr/bin/sh"},
		{Name: "./bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin"},
		{Name: "./etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 6, Uid: 7, Gid: 8},
		{Name: "./etc/motd", Typeflag: tar.TypeReg, Mode: 0o600, Size: 6, ModTime: mt.Add(time.Hour)},
	}
	hdrs = append(hdrs, extra...)
	for _, h := range hdrs {
		if h.ModTime.IsZero() {
			h.ModTime = mt
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	}
	tw.Close()
	zw.Close()
	return buf.String()
}

// lastLayer is the image's top layer.
func lastLayer(t *testing.T, img v1.Image) v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("layers: %v", err)
	}
	return ls[len(ls)-1]
}

// describe is a layer's digest, diffID, size and media type.
func describe(t *testing.T, l v1.Layer) string {
	t.Helper()
	d, err1 := l.Digest()
	id, err2 := l.DiffID()
	n, err3 := l.Size()
	mt, err4 := l.MediaType()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s %s %d %s", d, id, n, mt)
}

// TestAddArchiveStreamed: FROM scratch + ADD rootfs.tar.gz / writes the
// layer from the archive as a stream (nothing extracted, so no directory
// to adopt), with the digest extracting it gives: the same ADD on another
// base still extracts (the layer's bytes do not depend on the base with
// "/" as the destination) and must give the same layer. A RUN on top
// sees the tree, extracted from the blob.
func TestAddArchiveStreamed(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	tb := newTestBuild(t, map[string]string{"rootfs.tar.gz": rootfsArchive(t), "marker": "m"})
	tb.epoch = &epoch
	before := streamedADDs.Load()
	streamed, _ := tb.mustBuild("FROM scratch\nADD rootfs.tar.gz /\nRUN write /etc/x y\n")
	if streamedADDs.Load() != before+1 {
		t.Fatal("the ADD was not streamed")
	}
	extracted, _ := tb.mustBuild("FROM scratch\nCOPY marker /\nADD rootfs.tar.gz /\n")
	if streamedADDs.Load() != before+1 {
		t.Fatal("the ADD on a base was streamed: the comparison needs the extraction")
	}
	ls, err := streamed.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if s, x := describe(t, ls[0]), describe(t, lastLayer(t, extracted.Image)); s != x {
		t.Errorf("streamed layer %s, extracted %s", s, x)
	}
	root := rootfs(t, streamed.Image)
	for _, p := range []string{"usr/bin/sh", "usr/bin/ash", "dev/null", "etc/x"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Error(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/motd")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/motd: %v %v, want the later entry's 0600", fi, err)
	}
	// Built again: the step cached, the same digest.
	again, out := tb.mustBuild("FROM scratch\nADD rootfs.tar.gz /\nRUN write /etc/x y\n")
	d1, _ := streamed.Image.Digest()
	d2, _ := again.Image.Digest()
	if d1 != d2 || !strings.Contains(out, "CACHED") {
		t.Errorf("rebuild: %s then %s\n%s", d1, d2, out)
	}
}

// TestAddArchiveStreamFallsBack: an archive the stream does not reproduce
// (a name through a symlink) is extracted as before, and one ADD refuses
// is still refused, naming the entry.
func TestAddArchiveStreamFallsBack(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	through := rootfsArchive(t, tar.Header{Name: "./bin/through", Typeflag: tar.TypeReg, Mode: 0o755})
	whiteout := rootfsArchive(t, tar.Header{Name: "./etc/.wh.passwd", Typeflag: tar.TypeReg, Mode: 0o644})
	tb := newTestBuild(t, map[string]string{"through.tar.gz": through, "wh.tar.gz": whiteout})
	tb.epoch = &epoch
	before := streamedADDs.Load()
	res, _ := tb.mustBuild("FROM scratch\nADD through.tar.gz /\n")
	if streamedADDs.Load() != before {
		t.Error("the archive was streamed")
	}
	if _, err := os.Lstat(filepath.Join(rootfs(t, res.Image), "usr/bin/through")); err != nil {
		t.Errorf("the entry through the symlink: %v", err)
	}
	_, _, err := tb.build("FROM scratch\nADD wh.tar.gz /\n")
	if err == nil || !strings.Contains(err.Error(), "./etc/.wh.passwd") {
		t.Errorf("error %v, want the .wh. entry named", err)
	}
}
