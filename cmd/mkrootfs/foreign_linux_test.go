package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// arm64Busybox is where testdata/install-test-deps.sh puts Debian's arm64 busybox-static.
const arm64Busybox = "/var/cache/strata-test/arm64/busybox"

// TestForeignBusybox: mkrootfs -busybox with Debian's arm64 busybox writes an arm64 rootfs,
// byte for byte the same twice.
func TestForeignBusybox(t *testing.T) {
	if _, err := os.Stat(arm64Busybox); err != nil {
		t.Skipf("needs Debian's arm64 busybox at %s (testdata/install-test-deps.sh): %v", arm64Busybox, err)
	}
	if _, err := exec.LookPath("qemu-aarch64-static"); err != nil {
		t.Skipf("needs qemu-aarch64-static (Debian's qemu-user-static): %v", err)
	}
	dir := t.TempDir()
	write := func(name string) []byte {
		out := filepath.Join(dir, name)
		if err := run(context.Background(), options{busybox: arm64Busybox, out: out}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := write("a.tar.gz")
	if !bytes.Equal(a, write("b.tar.gz")) {
		t.Error("two runs with the arm64 busybox wrote different tarballs")
	}
	entries := tarEntries(t, a)
	if h := entries["bin/uname"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
		t.Errorf("bin/uname: %+v", h)
	}
	bb := fileOf(t, a, "bin/busybox")
	f, err := elf.NewFile(bytes.NewReader(bb))
	if err != nil {
		t.Fatalf("bin/busybox: %v", err)
	}
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("bin/busybox is a %s binary, want EM_AARCH64", f.Machine)
	}
}

// fileOf is the content of one regular file of a gzipped tarball.
func fileOf(t *testing.T, gz []byte, name string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the tarball: %v", name, err)
		}
		if filepath.Clean(h.Name) == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}
