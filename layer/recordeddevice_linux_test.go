package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/owners"
)

// TestRecordedDeviceIsWrittenAsANode: an empty file recording a device node (a rootless
// extraction's) goes into the layer as that node, with the file's permissions and no
// record xattr; an empty file without a record stays a file.
func TestRecordedDeviceIsWrittenAsANode(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "tty")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dev, 0o620); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(dev, owners.OverrideXattr, []byte("0:5:0620:char-4-7"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTar(context.Background(), &buf, dir, WriteOptions{Source: FromDir, Owners: owners.Mapped}); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h
	}
	h := got["tty"]
	if h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 4 || h.Devminor != 7 || h.Mode != 0o620 || h.Size != 0 {
		t.Errorf("tty entry = %+v, want a character device 4:7 mode 0620", h)
	}
	if h != nil && len(h.PAXRecords) != 0 {
		t.Errorf("tty entry keeps %v", h.PAXRecords)
	}
	if e := got["empty"]; e == nil || e.Typeflag != tar.TypeReg {
		t.Errorf("empty entry = %+v, want a regular file", e)
	}
	// Where nodes are made for real, a record is an ordinary file's xattr.
	buf.Reset()
	if err := WriteTar(context.Background(), &buf, dir, WriteOptions{Source: FromDir}); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "tty" && h.Typeflag != tar.TypeReg {
			t.Errorf("a root build wrote the record as %c, want a regular file", h.Typeflag)
		}
	}
}
